"""The registry's and the logbook's consumers: events applied per second, against bare nats-py.

At national size the logbook's read model follows three registry events per household (a
million households registered, assigned to a team, moved on at their first visit), and the
registry reads every logbook entry (ten million), of which only a household's first moves it
on. One run starts its own PostgreSQL and NATS and measures, each against a bare durable pull
consumer of the same messages in the same run (fetch 200, ack each, nothing applied):

1. logbook: `--households` households' registered, assigned and status-changed events on
   `REGISTRY`, drained by the logbook app's consumer (from its start until it has applied all);
2. registry: the same number of households imported into the registry (the real import, in
   process), then `--entries` visit and intervention events for each on `LOGBOOK`, drained by
   the registry app's consumer; the first event of each household moves it to `in_progress`.

`python -m bench.consumers [--households 5000] [--entries 10]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from fastapi import FastAPI

from bench.analytics import bare_consume, publish
from bench.support import local_servers
from services.logbook.app import create_app as create_logbook
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.imports.generate import generate_households
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.events import Event, uuid7
from shared.events.logbook import InterventionRecorded, VisitRecorded
from shared.events.registry import HouseholdAssigned, HouseholdRegistered, HouseholdStatusChanged
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY

ADMIN = Caller(subject="bench-admin@TH", role=Role.national_admin, area="TH")


async def drained(app: FastAPI, count: int, within: float = 3600) -> float:
    """Events/s the app's consumer applies, from the app's start until it applied `count`."""
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        while app.state.consumer.applied < count:
            if time.perf_counter() - started > within:
                raise TimeoutError(f"{app.title}: not every event applied within {within}s")
            await asyncio.sleep(0.02)
        return count / (time.perf_counter() - started)


def registry_events(households: int, rng: random.Random) -> list[Event]:
    """Each household registered, then assigned to its sub-district's team, then moved on."""
    events: list[Event] = []
    later: list[Event] = []
    teams: dict[str, UUID] = {}
    for n in range(households):
        household = uuid7()
        area = f"24{rng.randint(1, 11):02d}{rng.randint(1, 9):02d}{rng.randint(1, 12):02d}"
        team = teams.setdefault(area[:6], uuid7())

        def event(data: Any, area: str = area, household: UUID = household) -> Event:
            return Event.of(data, source="registry", subject=household, area_code=area)

        events.append(
            event(
                HouseholdRegistered(
                    household_id=household,
                    area_code=area,
                    house_code=f"{n:011d}",
                    status="target",
                    survey_year=2567,
                    failed_indicators=["2560-20"],
                    dimensions=["income"],
                    mentor_team_id=None,
                    member_count=rng.randint(1, 6),
                )
            )
        )
        events.append(
            event(
                HouseholdAssigned(
                    household_id=household,
                    area_code=area,
                    mentor_team_id=team,
                    previous_team_id=None,
                )
            )
        )
        later.append(
            event(
                HouseholdStatusChanged(
                    household_id=household,
                    area_code=area,
                    from_status="target",
                    to_status="in_progress",
                    reason="first visit recorded",
                    changed_by="service:logbook",
                )
            )
        )
    return events + later  # as in the proof: every household registered and assigned first


def logbook_events(households: list[asyncpg.Record], entries: int) -> list[Event]:
    """`entries` events per household, round by round: a visit first, then interventions."""
    events: list[Event] = []
    now = datetime.now(UTC)
    for round_ in range(entries):
        for row in households:
            household, area = row["id"], row["area_code"]
            data: Any
            if round_ % 3 == 0:
                data = VisitRecorded(
                    visit_id=uuid7(),
                    household_id=household,
                    area_code=area,
                    team_id=None,
                    visited_at=now,
                    first_visit=round_ == 0,
                    problems=[],
                    capitals={"human": 3},
                    next_visit_due=None,
                )
            else:
                data = InterventionRecorded(
                    intervention_id=uuid7(),
                    household_id=household,
                    area_code=area,
                    person_id=None,
                    dimension="income",
                    menu_code="INC-01",
                    agency_id=None,
                    amount_thb=None,
                    status="planned",
                    planned_for=None,
                    completed_at=None,
                    recorded_at=now,
                )
            events.append(Event.of(data, source="logbook", subject=household, area_code=area))
    return events


async def finished(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """The import job once it is done or failed."""
    for _ in range(36_000):
        job: dict[str, Any] = (await client.get(path)).json()
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{path} did not finish within an hour")


async def import_households(
    settings: RegistrySettings, households: int, area: str | None = None
) -> list[asyncpg.Record]:
    """The households (of this area, or of the whole country) through the registry's own
    import (in process); their ids and areas."""
    app = create_registry(settings.model_copy(update={"consumer_enabled": False}))
    token = mint_internal_token(ADMIN, DEV_INTERNAL_KEY, ttl_seconds=3600)
    csv = "".join(generate_households(households, seed=7, area=area)).encode()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://registry",
            headers={IDENTITY_HEADER: token},
            timeout=600,
        ) as client,
    ):
        started = await client.post(
            "/v1/imports/households", content=csv, headers={"Content-Type": "text/csv"}
        )
        started.raise_for_status()
        job = await finished(client, f"/v1/imports/{started.json()['id']}")
        if job["state"] != "done" or job["rejected"]:
            raise RuntimeError(f"the import did not land whole: {job}")
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch("SELECT id, area_code FROM household ORDER BY id"))
    finally:
        await conn.close()


async def measure(
    nats_url: str, namespace: str, stream: str, events: list[Event], app: Callable[[], FastAPI]
) -> dict[str, Any]:
    await publish(nats_url, namespace, events)
    bare = await bare_consume(nats_url, namespace, {stream: len(events)})
    applied = await drained(app(), len(events))
    return {
        "events": len(events),
        "bare_fetch_ack_per_s": round(bare),
        "applied_per_s": round(applied),
        "vs_bare": round(applied / bare, 3),
    }


async def main(args: argparse.Namespace) -> None:
    report: dict[str, Any] = {}
    with local_servers() as (_, postgres, broker):
        server = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}"
        logbook = LogbookSettings(
            database_url=f"{server}/logbook",
            nats_url=broker.url,
            events_namespace="logbookpart.",
        )
        await asyncio.to_thread(upgrade, LOGBOOK_MIGRATIONS, logbook.database_url)
        report["logbook (REGISTRY events: registered, assigned, moved on)"] = await measure(
            broker.url,
            logbook.events_namespace,
            "REGISTRY",
            registry_events(args.households, random.Random(7)),
            lambda: create_logbook(logbook),
        )
        registry = RegistrySettings(
            database_url=f"{server}/registry",
            nats_url=broker.url,
            events_namespace="registrypart.",
        )
        await asyncio.to_thread(upgrade, REGISTRY_MIGRATIONS, registry.database_url)
        households = await import_households(registry, args.households)
        report[f"registry (LOGBOOK events: {args.entries} a household)"] = await measure(
            broker.url,
            registry.events_namespace,
            "LOGBOOK",
            logbook_events(households, args.entries),
            lambda: create_registry(registry),
        )
    print(json.dumps({"households": args.households, **report}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument("--entries", type=int, default=10, help="logbook events a household")
    asyncio.run(main(parser.parse_args()))
