"""A write load through the registry and the logbook, and the proof that a fault lost nothing.

`Load` writes households' journeys (registration, team, visit, interventions with status
changes and corrections, graduations and exits) as a real client would: every POST with an
`Idempotency-Key`, retried with that key after a dropped connection or a 503 until it gets
its answer. `Ledger` keeps what was answered 2xx. `prove_nothing_lost` then waits until every
outbox is published and every consumer has acked every event, and shows:

- every 2xx write is in the owning service's tables, once;
- every outbox row reached its stream, and every event analytics consumes was applied once;
- every total analytics keeps (per area and dimension, per menu and status, and the monthly
  changes that add up to them) equals the totals computed from the registry's and the
  logbook's own tables.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import nats
import pytest
from fastapi import FastAPI
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from pinpoint.devservers import free_port, stop_process, wait_for_port
from services.analytics.app import create_app as create_analytics
from services.analytics.events import LOGBOOK_DURABLE as ANALYTICS_LOGBOOK
from services.analytics.events import REGISTRY_DURABLE as ANALYTICS_REGISTRY
from services.analytics.repository import MEASURES
from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as create_logbook
from services.logbook.events import DURABLE as LOGBOOK_DURABLE
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.events import DURABLE as REGISTRY_DURABLE
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.bus import ensure_streams
from shared.events import Event, stream_name
from shared.indicators import INDICATORS_BY_CODE
from shared.settings import DEV_INTERNAL_KEY, ServiceSettings
from tests.analytics.history import applied_events, stream_events
from tests.conftest import db_rows, eventually, running
from tests.logbook.support import VISIT

AREAS = ("240101", "240102", "240201")
FAILED = (["2560-20", "2560-08"], ["2560-09"], ["2560-22", "2560-27"], ["2560-16", "2560-04"])
HELP = (
    ("income", "INC-02", "1500.00"),
    ("living", "LIV-01", "20000.00"),
    ("education", "EDU-01", "0"),
    ("health", "HLT-04", "350.00"),
)
# Every durable consumer of the streams: (stream, durable).
CONSUMERS = (
    ("REGISTRY", ANALYTICS_REGISTRY),
    ("LOGBOOK", ANALYTICS_LOGBOOK),
    ("REGISTRY", LOGBOOK_DURABLE),
    ("LOGBOOK", REGISTRY_DURABLE),
)


@dataclass
class Ledger:
    """What the services answered 2xx to: the writes no fault may lose."""

    households: list[str] = field(default_factory=list)
    visits: list[str] = field(default_factory=list)
    interventions: list[str] = field(default_factory=list)  # new entries and corrections
    intervention_statuses: list[tuple[str, str]] = field(default_factory=list)
    household_statuses: list[tuple[str, str]] = field(default_factory=list)
    answered: int = 0
    retried: int = 0
    in_flight: Counter[str] = field(default_factory=Counter)  # requests sent, by service URL


def identity(role: str, area: str, team: str | None = None) -> dict[str, str]:
    """The internal identity header the gateway would send for this caller."""
    caller = Caller(
        subject=f"{role}@{area}", role=Role(role), area=area, team_id=UUID(team) if team else None
    )
    return {IDENTITY_HEADER: mint_internal_token(caller, DEV_INTERNAL_KEY)}


def asgi_client(app: Any) -> httpx.AsyncClient:
    """A client of an in-process app that sees a 500 as an answer, as a remote client would."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://pinpoint",
        timeout=30,
    )


class WriteFailed(AssertionError):
    """A write got an answer that no fault excuses (a 4xx, a 500), or none in time."""


@dataclass
class Load:
    """Journeys of `households` households, `concurrency` at a time, through two clients."""

    registry: httpx.AsyncClient
    logbook: httpx.AsyncClient
    households: int = 30
    concurrency: int = 6
    within: float = 60.0  # how long one write may take to get its answer, retries included
    ledger: Ledger = field(default_factory=Ledger)
    teams: dict[str, str] = field(default_factory=dict)

    async def write(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any],
        caller: dict[str, str],
    ) -> dict[str, Any]:
        """Send a write until it is answered; retry a dropped connection or a 503 with the
        same Idempotency-Key, as a real client does."""
        key = {"Idempotency-Key": str(uuid4())} if method == "POST" else {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.within
        while True:
            self.ledger.in_flight[str(client.base_url)] += 1
            try:
                response = await client.request(method, path, json=body, headers=caller | key)
            except httpx.TransportError as exc:
                failure = repr(exc)
            else:
                if response.status_code in (200, 201):
                    self.ledger.answered += 1
                    answer: dict[str, Any] = response.json()
                    return answer
                retry = response.status_code == 503 or (
                    response.status_code == 409 and "still running" in response.text
                )
                failure = f"{response.status_code} {response.text}"
                if not retry:
                    raise WriteFailed(f"{method} {path}: {failure}")
            finally:
                self.ledger.in_flight[str(client.base_url)] -= 1
            self.ledger.retried += 1
            if loop.time() > deadline:
                raise WriteFailed(f"{method} {path} not answered in {self.within}s: {failure}")
            await asyncio.sleep(0.1)  # a client's back-off before it tries again

    async def prepare(self) -> None:
        """A mentor team in each sub-district."""
        admin = identity("national_admin", "TH")
        for area in AREAS:
            team = await self.write(
                self.registry,
                "POST",
                "/v1/organizations",
                {"kind": "mentor_team", "name": f"ทีมพี่เลี้ยง {area}", "area_code": area},
                admin,
            )
            self.teams[area] = str(team["id"])

    async def run(self) -> None:
        """Every household's journey, `concurrency` at a time."""
        if not self.teams:
            await self.prepare()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(n: int) -> None:
            async with gate:
                await self.journey(n)

        async with asyncio.TaskGroup() as group:
            for n in range(self.households):
                group.create_task(one(n))

    async def journey(self, n: int) -> None:
        """Register, assign, visit and help household `n`; some help changes status, some is
        corrected; some households graduate, some turn out to be duplicates."""
        area = AREAS[n % len(AREAS)]
        team = self.teams[area]
        admin = identity("national_admin", "TH")
        mentor = identity("mentor", area, team)
        ledger = self.ledger
        household = await self.write(
            self.registry,
            "POST",
            "/v1/households",
            {
                "area_code": area,
                "address": f"{n} หมู่ 1",
                "failed_indicators": FAILED[n % len(FAILED)],
            },
            admin,
        )
        household_id = str(household["id"])
        ledger.households.append(household_id)
        await self.write(
            self.registry,
            "PUT",
            f"/v1/households/{household_id}/mentor-team",
            {"team_id": team},
            admin,
        )
        visit = await self.write(
            self.logbook, "POST", f"/v1/households/{household_id}/visits", VISIT, mentor
        )
        ledger.visits.append(str(visit["id"]))
        first = await self.give(household_id, n, mentor, completed=n % 2 == 1)
        if n % 3 == 0:
            second = await self.give(household_id, n + 1, mentor, completed=False)
            await self.move(second, "in_progress", mentor)
            await self.move(second, "cancelled" if n % 6 == 0 else "completed", mentor)
        if n % 4 == 1:
            fixed = await self.write(
                self.logbook,
                "POST",
                f"/v1/interventions/{first}/corrections",
                {"amount_thb": "999.50", "reason": "แก้จำนวนเงิน"},
                mentor,
            )
            ledger.interventions.append(str(fixed["id"]))
        if n % 5 == 2:
            await self.graduate(household_id, area)
        elif n % 7 == 3:
            await self.set_status(household_id, "duplicate", admin)

    async def give(
        self, household_id: str, n: int, mentor: dict[str, str], *, completed: bool
    ) -> str:
        dimension, menu, amount = HELP[n % len(HELP)]
        body = {
            "household_id": household_id,
            "dimension": dimension,
            "menu_code": menu,
            "amount_thb": amount,
            **({"status": "completed"} if completed else {}),
        }
        given = await self.write(self.logbook, "POST", "/v1/interventions", body, mentor)
        self.ledger.interventions.append(str(given["id"]))
        return str(given["id"])

    async def move(self, intervention_id: str, status: str, mentor: dict[str, str]) -> None:
        path = f"/v1/interventions/{intervention_id}/status"
        await self.write(self.logbook, "POST", path, {"status": status}, mentor)
        self.ledger.intervention_statuses.append((intervention_id, status))

    async def set_status(self, household_id: str, status: str, caller: dict[str, str]) -> None:
        path = f"/v1/households/{household_id}/status"
        await self.write(
            self.registry, "POST", path, {"status": status, "reason": "ตรวจสอบแล้ว"}, caller
        )
        self.ledger.household_statuses.append((household_id, status))

    async def graduate(self, household_id: str, area: str) -> None:
        """Wait until the registry has heard of the visit (from the LOGBOOK stream), then
        confirm the graduation as the district's officer."""
        admin = identity("national_admin", "TH")

        async def in_progress() -> bool:
            try:
                answer = await self.registry.get(f"/v1/households/{household_id}", headers=admin)
            except httpx.TransportError:
                return False
            return answer.status_code == 200 and answer.json()["status"] == "in_progress"

        await eventually(in_progress, within=self.within, what=f"{household_id} in progress")
        await self.set_status(household_id, "graduated", identity("district_officer", area[:4]))


async def until_written(
    ledger: Ledger, answered: int, writing: asyncio.Task[None], *, within: float = 60.0
) -> None:
    """Wait until the load has had `answered` writes answered (the moment to strike)."""

    def reached() -> bool:
        if writing.done():  # its failure, not a timeout, is what to see
            writing.result()
            pytest.fail(f"the load ended after {ledger.answered} writes, before {answered}")
        return ledger.answered >= answered

    await eventually(reached, within=within, what=f"{answered} writes answered")


# Waiting for quiet


@dataclass
class Services:
    registry: RegistrySettings
    logbook: LogbookSettings
    analytics: AnalyticsSettings
    nats_url: str

    @property
    def namespace(self) -> str:
        return self.registry.events_namespace


@asynccontextmanager
async def loaded(
    services: Services, *, answered: int = 40
) -> AsyncIterator[tuple[Load, asyncio.Task[None], FastAPI]]:
    """Registry, logbook and analytics in process on these settings, and the load on them:
    the block starts once `answered` writes have been answered, with the load still going.
    Yields the load, its task and the analytics app."""
    registry = create_registry(services.registry)
    logbook = create_logbook(services.logbook, registry_transport=httpx.ASGITransport(app=registry))
    analytics = create_analytics(services.analytics)
    async with (
        running(registry),
        running(logbook),
        running(analytics),
        asgi_client(registry) as to_registry,
        asgi_client(logbook) as to_logbook,
    ):
        load = Load(to_registry, to_logbook)
        await load.prepare()
        writing = asyncio.create_task(load.run())
        await until_written(load.ledger, answered, writing)
        yield load, writing, analytics


async def pending_outbox(settings: RegistrySettings | LogbookSettings) -> int:
    (row,) = await db_rows(settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return int(row["count"])


async def consumers_caught_up(nats_url: str, namespace: str) -> tuple[int, ...] | None:
    """The streams' last sequences if every consumer has acked every event of its stream it
    takes (its subject filter's), else None."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        lasts = []
        for stream, durable in CONSUMERS:
            name = stream_name(stream, namespace)
            last = (await js.stream_info(name)).state.last_seq
            info = await js.consumer_info(name, durable)
            if info.num_pending or info.num_ack_pending:
                return None
            lasts.append(last)
        return tuple(lasts)
    except Exception:  # NATS or a consumer not back yet: not quiet
        return None
    finally:
        await nc.close()


async def quiet(services: Services, *, within: float = 60.0) -> None:
    """Wait until both outboxes are published and every consumer of both streams has acked
    every event (the registry's and the logbook's too: what they apply makes new events)."""

    async def still() -> bool:
        before = await consumers_caught_up(services.nats_url, services.namespace)
        if before is None:
            return False
        for settings in (services.registry, services.logbook):
            if await pending_outbox(settings):
                return False
        return await consumers_caught_up(services.nats_url, services.namespace) == before

    await eventually(still, within=within, what="every outbox published, every event acked")


async def short_ack_wait(nats_url: str, namespace: str, seconds: float = 2.0) -> None:
    """Make every durable consumer ahead of the services, with an ack wait of `seconds`
    (30 s in the services): an event delivered to a process that then died comes again
    within the test's time. The services bind to these consumers as they find them."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, namespace)
        for stream, durable in CONSUMERS:
            await js.add_consumer(
                stream_name(stream, namespace),
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=seconds,
                    max_deliver=-1,
                    max_ack_pending=2000,
                ),
            )
    finally:
        await nc.close()


# The proof


async def prove_nothing_lost(services: Services, ledger: Ledger) -> dict[str, int]:
    """Wait for quiet, then prove no write lost, every event applied once and every total
    equal to the services' own tables. Returns what was counted, for the test to check."""
    await quiet(services)
    await every_write_once(services, ledger)
    events = await every_event_once(services)
    await totals_equal(services)
    return events


async def every_write_once(services: Services, ledger: Ledger) -> None:
    """Each write answered 2xx is in the owning service's tables once; nothing else is."""

    async def ids(settings: RegistrySettings | LogbookSettings, table: str) -> Counter[str]:
        rows = await db_rows(settings, f"SELECT id FROM {table}")
        return Counter(str(row["id"]) for row in rows)

    assert await ids(services.registry, "household") == Counter(ledger.households)
    assert await ids(services.logbook, "visit") == Counter(ledger.visits)
    assert await ids(services.logbook, "intervention") == Counter(ledger.interventions)
    moved = await db_rows(
        services.logbook,
        "SELECT intervention_id, to_status FROM intervention_status_change"
        " WHERE from_status IS NOT NULL",
    )
    assert Counter((str(r["intervention_id"]), r["to_status"]) for r in moved) == Counter(
        ledger.intervention_statuses
    )
    changed = await db_rows(
        services.registry,
        "SELECT household_id, to_status FROM status_change"
        " WHERE to_status IN ('graduated', 'duplicate')",
    )
    assert Counter((str(r["household_id"]), r["to_status"]) for r in changed) == Counter(
        ledger.household_statuses
    )


async def every_event_once(services: Services) -> dict[str, int]:
    """Every outbox row is in its stream, nothing else is; analytics applied each event of
    the streams once and dead-lettered none. Returns how many events, by analytics' consumer."""
    in_streams = await stream_events(services.nats_url, services.namespace)
    everything = await all_stream_event_ids(services.nats_url, services.namespace)
    for stream, settings in (("REGISTRY", services.registry), ("LOGBOOK", services.logbook)):
        rows = await db_rows(settings, "SELECT id FROM outbox")
        assert {row["id"] for row in rows} == everything[stream], f"{stream} ≠ its outbox"
    assert await applied_events(services.analytics) == in_streams
    assert await db_rows(services.analytics, "SELECT event_id FROM dead_letter") == []
    return {durable: len(ids) for durable, ids in in_streams.items()}


async def all_stream_event_ids(nats_url: str, namespace: str) -> dict[str, set[UUID]]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        found: dict[str, set[UUID]] = {}
        for stream in ("REGISTRY", "LOGBOOK"):
            name = stream_name(stream, namespace)
            state = (await js.stream_info(name)).state
            found[stream] = set()
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                message = await js.get_msg(name, seq)
                found[stream].add(Event.model_validate_json(message.data or b"").id)
        return found
    finally:
        await nc.close()


Totals = dict[tuple[str, ...], tuple[Any, ...]]


def _areas(code: str) -> list[str]:
    return ["TH", *(code[:n] for n in (2, 4, 6, 8) if n <= len(code))]


async def totals_from_records(services: Services) -> tuple[Totals, Totals]:
    """Totals by (area, dimension or `all`) and by (area, menu, status), computed from the
    registry's households and the logbook's interventions alone."""
    households = await db_rows(
        services.registry, "SELECT id, area_code, failed_indicators, status FROM household"
    )
    interventions = await db_rows(
        services.logbook,
        "SELECT i.household_id, i.area_code, i.dimension, i.menu_code, i.status, i.amount_thb"
        " FROM intervention i"
        " WHERE NOT EXISTS (SELECT 1 FROM intervention n WHERE n.supersedes = i.id)",
    )
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    amounts: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    menus: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    menu_amounts: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    live: dict[UUID, set[str]] = defaultdict(set)
    for i in interventions:
        if i["status"] != "cancelled":
            live[i["household_id"]].add(i["dimension"])
        delivered = i["amount_thb"] if i["status"] == "completed" and i["amount_thb"] else 0
        for area in _areas(i["area_code"]):
            for dimension in ("all", i["dimension"]):
                counts[(area, dimension)][i["status"]] += 1
                amounts[(area, dimension)] += delivered
            menus[(area, i["menu_code"], i["status"])]["interventions"] += 1
            menu_amounts[(area, i["menu_code"], i["status"])] += delivered
    for h in households:
        if h["status"] == "duplicate":
            continue
        dimensions = {INDICATORS_BY_CODE[c].dimension.value for c in h["failed_indicators"]}
        graduated = h["status"] == "graduated"
        for area in _areas(h["area_code"]):
            counts[(area, "all")]["target_households"] += 1
            counts[(area, "all")]["reached_households"] += bool(live[h["id"]])
            counts[(area, "all")]["graduated_households"] += graduated
            for dimension in dimensions:
                counts[(area, dimension)]["target_households"] += 1
                counts[(area, dimension)]["graduated_households"] += graduated
            for dimension in live[h["id"]]:
                counts[(area, dimension)]["reached_households"] += 1
    by_area: Totals = {
        key: (*(counts[key][m] for m in MEASURES), amounts[key].quantize(Decimal("0.01")))
        for key in counts
    }
    by_menu: Totals = {
        key: (menus[key]["interventions"], menu_amounts[key].quantize(Decimal("0.01")))
        for key in menus
    }
    return _nonzero(by_area), _nonzero(by_menu)


def _nonzero(totals: Totals) -> Totals:
    return {key: row for key, row in totals.items() if any(row)}


async def totals_in_analytics(services: Services) -> tuple[Totals, Totals, Totals]:
    """Analytics' totals by area and dimension, by menu and status, and the sums of its
    monthly changes by area and dimension (the series ends at the totals)."""
    columns = ", ".join(MEASURES)
    by_area = await db_rows(
        services.analytics, f"SELECT area_code, dimension, {columns}, amount_thb FROM area_progress"
    )
    by_menu = await db_rows(
        services.analytics,
        "SELECT area_code, menu_code, status, interventions, amount_thb FROM menu_progress",
    )
    sums = ", ".join([*(f"sum({m})::bigint" for m in MEASURES), "sum(amount_thb)"])
    by_month = await db_rows(
        services.analytics,
        f"SELECT area_code, dimension, {sums} FROM area_month GROUP BY area_code, dimension",
    )

    def keyed(rows: list[Any], width: int) -> Totals:
        return _nonzero({tuple(row[:width]): tuple(row[width:]) for row in rows})

    months = {
        key: (*row[:-1], Decimal(row[-1]).quantize(Decimal("0.01")))
        for key, row in keyed(by_month, 2).items()
    }
    return keyed(by_area, 2), keyed(by_menu, 3), months


async def totals_equal(services: Services) -> None:
    """Every total analytics keeps equals the one computed from the services' tables."""
    by_area, by_menu = await totals_from_records(services)
    in_analytics, menus_in_analytics, months = await totals_in_analytics(services)
    assert in_analytics == by_area
    assert menus_in_analytics == by_menu
    assert months == by_area


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no clean stop, no flush, nothing said to anyone."""
    assert process is not None and process.poll() is None
    process.kill()
    process.wait()


# Services in child processes, as `pinpoint serve` runs them


@dataclass
class Child:
    """One service served by uvicorn in a child process on a port of its own."""

    service: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> None:
        """Start it (again, on the same port) and wait until it answers /healthz."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pinpoint",
                    "serve",
                    self.service,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env={**os.environ, "PINPOINT_LOG_LEVEL": "WARNING", **self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=60)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def child_env(settings: ServiceSettings, **extra: str) -> dict[str, str]:
    """The PINPOINT_* variables that give a child process these settings."""
    return {
        "PINPOINT_ENVIRONMENT": settings.environment,
        "PINPOINT_SERVICE_NAME": settings.service_name,
        "PINPOINT_DATABASE_URL": settings.database_url,
        "PINPOINT_NATS_URL": settings.nats_url,
        "PINPOINT_EVENTS_NAMESPACE": settings.events_namespace,
        "PINPOINT_RELAY_IDLE_SECONDS": str(settings.relay_idle_seconds),
        "PINPOINT_DATABASE_POOL_SIZE": str(settings.database_pool_size),
        **extra,
    }
