"""Giving households to mentor teams, a thousand a request, against a bare set-based UPDATE.

At national size every one of a million households is given to its sub-district's team once,
up to 1,000 a request (`POST /v1/households/mentor-team`): each is locked, checked, changed,
audited and announced. One run starts its own PostgreSQL and NATS, imports `--households`
households of one province (`--area`) through the registry's own import, makes a mentor team
in each sub-district, then measures, on the same rows in the same run:

1. the baseline: one `UPDATE household SET mentor_team_id = ... FROM unnest(...)` a chunk,
   straight to PostgreSQL (the row change alone: no check, no audit, no event);
2. the registry: the same chunks through its API (in process, over ASGI), the relay running.

Between the two every household's team is cleared again (outside the timing), so both change
every row. Reports households per second for each and the ratio.

`python -m bench.assignments [--households 20000] [--area 24]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from bench.consumers import ADMIN, import_households
from bench.support import local_servers
from services.registry.app import create_app as create_registry
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER, mint_internal_token
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY

CHUNK = 1000


def chunks(
    households: list[asyncpg.Record], teams: dict[str, UUID]
) -> list[tuple[UUID, list[UUID]]]:
    """Each team's households, up to `CHUNK` at a time."""
    by_team: dict[UUID, list[UUID]] = defaultdict(list)
    for household in households:
        by_team[teams[household["area_code"][:6]]].append(household["id"])
    return [
        (team, ids[n : n + CHUNK])
        for team, ids in by_team.items()
        for n in range(0, len(ids), CHUNK)
    ]


async def bare(dsn: str, work: list[tuple[UUID, list[UUID]]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for team, ids in work:
            await conn.execute(
                "UPDATE household SET mentor_team_id = $1, version = version + 1,"
                " updated_at = now() FROM unnest($2::uuid[]) AS chosen(id)"
                " WHERE household.id = chosen.id",
                team,
                ids,
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def clear(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE household SET mentor_team_id = NULL")
        await conn.execute("VACUUM ANALYZE household")
    finally:
        await conn.close()


async def through_api(settings: RegistrySettings, work: list[tuple[UUID, list[UUID]]]) -> float:
    app = create_registry(settings.model_copy(update={"consumer_enabled": False}))
    token = mint_internal_token(ADMIN, DEV_INTERNAL_KEY, ttl_seconds=3600)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://registry",
            headers={IDENTITY_HEADER: token},
            timeout=600,
        ) as client,
    ):
        started = time.perf_counter()
        for team, ids in work:
            body = {"team_id": str(team), "household_ids": [str(h) for h in ids]}
            response = await client.post("/v1/households/mentor-team", json=body)
            response.raise_for_status()
            if response.json()["changed"] != len(ids):
                raise RuntimeError(f"not every household changed team: {response.text}")
        return time.perf_counter() - started


async def make_teams(settings: RegistrySettings, areas: set[str]) -> dict[str, UUID]:
    app = create_registry(settings.model_copy(update={"consumer_enabled": False}))
    token = mint_internal_token(ADMIN, DEV_INTERNAL_KEY, ttl_seconds=3600)
    teams: dict[str, UUID] = {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://registry",
            headers={IDENTITY_HEADER: token},
        ) as client,
    ):
        for area in sorted(areas):
            body = {"kind": "mentor_team", "name": f"ทีมพี่เลี้ยงตำบล {area}", "area_code": area}
            response = await client.post("/v1/organizations", json=body)
            response.raise_for_status()
            teams[area] = UUID(response.json()["id"])
    return teams


async def main(args: argparse.Namespace) -> None:
    with local_servers() as (_, postgres, broker):
        settings = RegistrySettings(
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/registry",
            nats_url=broker.url,
            events_namespace="assignments.",
        )
        dsn = settings.database_url.replace("+asyncpg", "")
        await asyncio.to_thread(upgrade, REGISTRY_MIGRATIONS, settings.database_url)
        households = await import_households(settings, args.households, args.area)
        teams = await make_teams(settings, {h["area_code"][:6] for h in households})
        work = chunks(households, teams)
        await clear(dsn)
        bare_s = await bare(dsn, work)
        await clear(dsn)
        api_s = await through_api(settings, work)
    report: dict[str, Any] = {
        "households": len(households),
        "teams": len(teams),
        "requests": len(work),
        "bare_update_per_s": round(len(households) / bare_s),
        "registry_per_s": round(len(households) / api_s),
        "vs_bare": round(api_s / bare_s, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument(
        "--area",
        default="24",
        help="where the households live; a province's 93 sub-districts give about as many"
        " households a team as the whole country's 7,436 give a million",
    )
    asyncio.run(main(parser.parse_args()))
