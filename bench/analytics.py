"""Analytics: events applied per second, a write's delay to progress, and progress at national size.

One run starts its own PostgreSQL and NATS in a temporary folder and measures, each against a
baseline of the same run:

1. throughput: `--events` registry and logbook events (households registered, interventions
   recorded and moved on, in real villages of every province) published into the streams, then
   drained by the analytics app's two consumers, against a bare nats-py pull consumer of its own
   that only fetches and acks the same messages; with the CPU seconds per 1,000 events of the
   consumers' process and of PostgreSQL while they drain;
2. delay: registry, logbook and analytics each served by uvicorn in a child process; mentors
   write interventions at a steady `--rate`, and a poller of `GET /v1/progress/TH` notes when
   the totals include each write; against the write's own latency and a bare `js.publish` →
   arrival on the same server;
3. query: analytics' projections filled to national size (`--households`, `--interventions`)
   by set-based SQL from generated facts, as the events would have left them; then
   `GET /v1/progress/{area}`, `/children` and `/series` for the country, a province, a
   district and a sub-district, in process through the app, against `/healthz` through the same
   app and a bare asyncpg primary-key lookup of one projection row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench.import_households import _own_cpu, _server_cpu
from bench.logbook_writes import Arrivals, bare_event_delays
from bench.support import Served, delays_ms, serve
from pinpoint.devservers import LocalNats, LocalPostgres, free_port
from services.analytics.app import create_app as create_analytics
from services.analytics.migrations import SCRIPT_LOCATION as ANALYTICS_MIGRATIONS
from services.analytics.settings import AnalyticsSettings
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.bus import ensure_streams
from shared.events import Event, stream_name, subject_for, uuid7
from shared.events.logbook import InterventionRecorded, InterventionStatusChanged
from shared.events.registry import HouseholdRegistered
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY

MENU_PREFIX = {
    "health": "HLT",
    "living": "LIV",
    "education": "EDU",
    "income": "INC",
    "public_access": "PUB",
}
DIMENSIONS = list(MENU_PREFIX)
ANALYST = Caller(subject="bench-analyst@TH", role=Role.analyst, area="TH")
ADMIN = Caller(subject="bench-admin@TH", role=Role.national_admin, area="TH")
BATCH = 200  # what the bare consumer fetches at a time (analytics fetches up to 1,000)
DELAY_SUBDISTRICTS = ["240101", "240102", "240201", "300101", "300102", "500101"]
POLL_SECONDS = 0.01


def _token(caller: Caller) -> str:
    return mint_internal_token(caller, DEV_INTERNAL_KEY, ttl_seconds=3 * 3600)


async def _subdistricts(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT code FROM area WHERE level = 'subdistrict' ORDER BY code")
    finally:
        await conn.close()
    return [row["code"] for row in rows]


# 1. Throughput


def history(count: int, subdistricts: list[str], rng: random.Random) -> tuple[list[Event], ...]:
    """`count` events as the services would publish them: each household registered in a
    village, then two interventions recorded for it, about half of them completed later."""
    registry: list[Event] = []
    logbook: list[Event] = []
    now = datetime.now(UTC)
    while len(registry) + len(logbook) < count:
        household = uuid7()
        village = f"{rng.choice(subdistricts)}{rng.randint(1, 12):02d}"
        dimensions = sorted(rng.sample(DIMENSIONS, rng.randint(1, 3)))
        registry.append(
            Event.of(
                HouseholdRegistered(
                    household_id=household,
                    area_code=village,
                    house_code=None,
                    status="target",
                    survey_year=2567,
                    failed_indicators=[],
                    dimensions=dimensions,
                    mentor_team_id=None,
                    member_count=rng.randint(1, 6),
                ),
                source="registry",
                subject=household,
                area_code=village,
            )
        )
        for _ in range(2):
            intervention, dimension = uuid7(), rng.choice(dimensions)
            menu = f"{MENU_PREFIX[dimension]}-0{rng.randint(1, 5)}"
            amount = Decimal(rng.randrange(500, 20_000, 100))
            facts: dict[str, Any] = {
                "intervention_id": intervention,
                "household_id": household,
                "area_code": village,
                "dimension": dimension,
                "menu_code": menu,
                "amount_thb": amount,
            }
            recorded = InterventionRecorded(
                **facts,
                person_id=None,
                agency_id=None,
                status="planned",
                planned_for=None,
                completed_at=None,
                recorded_at=now,
            )
            logbook.append(
                Event.of(recorded, source="logbook", subject=intervention, area_code=village)
            )
            if rng.random() < 0.5:
                completed = InterventionStatusChanged(
                    **facts,
                    from_status="planned",
                    to_status="completed",
                    changed_at=now,
                    note=None,
                )
                logbook.append(
                    Event.of(completed, source="logbook", subject=intervention, area_code=village)
                )
    overflow = len(registry) + len(logbook) - count
    return registry, logbook[: len(logbook) - overflow]


async def publish(nats_url: str, namespace: str, events: list[Event]) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, namespace)
        for start in range(0, len(events), 5000):
            futures = [
                await js.publish_async(
                    subject_for(e.type, namespace),
                    e.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(e.id)},
                )
                for e in events[start : start + 5000]
            ]
            await asyncio.gather(*futures)
    finally:
        await nc.close()


async def bare_consume(nats_url: str, namespace: str, counts: dict[str, int]) -> float:
    """Events/s of a bare durable pull consumer per stream: fetch a batch, ack each message."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def drain(stream: str, count: int) -> None:
        subscription = await js.pull_subscribe(
            "",
            durable=f"bare-{stream.lower()}",
            stream=stream_name(stream, namespace),
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                max_ack_pending=BATCH * 10,
            ),
        )
        seen = 0
        while seen < count:
            for message in await subscription.fetch(BATCH, timeout=5):
                await message.ack()
                seen += 1
        await subscription.unsubscribe()

    started = time.perf_counter()
    await asyncio.gather(*(drain(stream, n) for stream, n in counts.items()))
    elapsed = time.perf_counter() - started
    await nc.close()
    return sum(counts.values()) / elapsed


async def analytics_consume(
    database_url: str, nats_url: str, namespace: str, count: int
) -> tuple[float, float, int]:
    """Events/s the analytics app's consumers apply (from its start until every event is
    applied), the CPU seconds this process spent meanwhile, and the country's target households
    once they have."""
    settings = AnalyticsSettings(
        database_url=database_url, nats_url=nats_url, events_namespace=namespace
    )
    app = create_analytics(settings)
    cpu = _own_cpu()
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        while sum(c.applied for c in app.state.consumers) < count:
            if time.perf_counter() - started > 1800:
                raise TimeoutError("analytics did not apply every event within 30 minutes")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = _own_cpu() - cpu
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        target = await conn.fetchval(
            "SELECT target_households FROM area_progress WHERE area_code = 'TH'"
            " AND dimension = 'all'"
        )
    finally:
        await conn.close()
    return count / elapsed, cpu, int(target)


async def throughput(postgres: LocalPostgres, nats_url: str, count: int) -> dict[str, Any]:
    server = f"postgres@127.0.0.1:{postgres.port}"
    database_url = f"postgresql+asyncpg://{server}/analytics_throughput"
    await asyncio.to_thread(upgrade, ANALYTICS_MIGRATIONS, database_url)
    subdistricts = await _subdistricts(f"postgresql://{server}/analytics_throughput")
    registry, logbook = history(count, subdistricts, random.Random(7))
    namespace = "throughput."
    await publish(nats_url, namespace, registry + logbook)
    bare = await bare_consume(
        nats_url, namespace, {"REGISTRY": len(registry), "LOGBOOK": len(logbook)}
    )
    # CPU as well as wall time: other work on the machine moves events/s more than CPU.
    server_cpu = _server_cpu(postgres)
    applied, consumer_cpu, target = await analytics_consume(
        database_url, nats_url, namespace, count
    )
    server_cpu = _server_cpu(postgres) - server_cpu
    assert target == len(registry), f"analytics counts {target} households of {len(registry)}"
    return {
        "events": count,
        "registry_events": len(registry),
        "logbook_events": len(logbook),
        "bare_fetch_ack_per_s": round(bare),
        "analytics_applied_per_s": round(applied),
        "analytics_vs_bare": round(applied / bare, 3),
        "analytics_cpu_s_per_1000": round(consumer_cpu / count * 1000, 3),
        "postgres_cpu_s_per_1000": round(server_cpu / count * 1000, 3),
    }


# 2. Delay from a write to progress


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 120) -> None:
    deadline = time.perf_counter() + within
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not within {within}s: {what}")
        await asyncio.sleep(0.1)


@dataclass
class Poller:
    """Polls the country's progress and notes each answer: (asked, answered, planned)."""

    client: httpx.AsyncClient
    interval: float
    seen: list[tuple[float, float, int]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def planned(self) -> int:
        response = await self.client.get("/v1/progress/TH")
        response.raise_for_status()
        return int(response.json()["interventions"]["planned"])

    async def run(self) -> None:
        while not self.stop.is_set():
            asked = time.perf_counter()
            planned = await self.planned()
            self.seen.append((asked, time.perf_counter(), planned))
            await asyncio.sleep(self.interval)

    def visible(self, answered: float, count: int) -> float:
        """When a poll first showed `count` planned, having asked after `answered` or not."""
        for _, at, planned in self.seen:
            if planned >= count and at >= answered:
                return at
        raise RuntimeError(f"progress never reached {count} planned interventions")


async def register(
    registry: httpx.AsyncClient, subdistricts: list[str], households: int
) -> dict[str, list[tuple[str, str]]]:
    """A mentor team in each sub-district and households assigned to it; by team id, the
    households with their sub-district."""
    teams: dict[str, list[tuple[str, str]]] = {}
    team_of = {}
    for area in subdistricts:
        response = await registry.post(
            "/v1/organizations",
            json={"kind": "mentor_team", "name": f"ทีมพี่เลี้ยง {area}", "area_code": area},
        )
        response.raise_for_status()
        team_of[area] = response.json()["id"]
        teams[team_of[area]] = []
    for n in range(households):
        area = subdistricts[n % len(subdistricts)]
        response = await registry.post(
            "/v1/households",
            json={
                "area_code": area,
                "address": f"{n} หมู่ {n % 9 + 1}",
                "failed_indicators": ["2560-20", "2560-08"],
            },
        )
        response.raise_for_status()
        household = response.json()["id"]
        assigned = await registry.put(
            f"/v1/households/{household}/mentor-team", json={"team_id": team_of[area]}
        )
        assigned.raise_for_status()
        teams[team_of[area]].append((household, area))
    return teams


async def paced_writes(
    logbook: httpx.AsyncClient,
    teams: dict[str, list[tuple[str, str]]],
    writes: int,
    rate: float,
    rng: random.Random,
) -> tuple[list[float], list[float], list[str]]:
    """Write interventions one after another at `rate` a second, each as a mentor of the
    household's team; each write's send and answer times and the intervention ids."""
    tokens = {
        team: _token(
            Caller(subject=f"mentor@{team}", role=Role.mentor, area=area, team_id=UUID(team))
        )
        for team, households in teams.items()
        for _, area in households[:1]
    }
    sent, answered, ids = [], [], []
    started = time.perf_counter()
    for n in range(writes):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        team = rng.choice(list(tokens))
        household, _ = rng.choice(teams[team])
        body = {
            "household_id": household,
            "dimension": "income",
            "menu_code": "INC-02",
            "description": "ฝึกอาชีพทำขนมไทยขายในตลาดชุมชน",
            "amount_thb": "1500.00",
            "planned_for": "2027-01-15",
        }
        sent.append(time.perf_counter())
        response = await logbook.post(
            "/v1/interventions", json=body, headers={IDENTITY_HEADER: tokens[team]}
        )
        answered.append(time.perf_counter())
        if response.status_code != 201:
            raise RuntimeError(f"write failed: {response.status_code} {response.text}")
        ids.append(str(response.json()["id"]))
    return sent, answered, ids


@dataclass
class Stack:
    """Registry, logbook and analytics, each served by uvicorn in a child process."""

    server: str
    registry: Served
    logbook: Served
    analytics: Served


def start_stack(server: str, nats_url: str, namespace: str, root: Path) -> list[Served]:
    def env(name: str) -> dict[str, str]:
        return {
            "PINPOINT_DATABASE_URL": f"postgresql+asyncpg://{server}/{name}",
            "PINPOINT_NATS_URL": nats_url,
            "PINPOINT_EVENTS_NAMESPACE": namespace,
            "PINPOINT_SERVICE_NAME": name,
        }

    served = [serve("registry", env("registry"), root / "registry.log")]
    try:
        logbook = {**env("logbook"), "PINPOINT_REGISTRY_URL": served[0].url}
        served.append(serve("logbook", logbook, root / "logbook.log"))
        served.append(serve("analytics", env("analytics"), root / "analytics.log"))
    except BaseException:
        for process in served:
            process.stop()
        raise
    return served


async def delay(
    server: str, nats_url: str, root: Path, households: int, writes: int, rate: float
) -> dict[str, Any]:
    namespace = "delay."
    for name, migrations in (
        ("registry", REGISTRY_MIGRATIONS),
        ("logbook", LOGBOOK_MIGRATIONS),
        ("analytics", ANALYTICS_MIGRATIONS),
    ):
        await asyncio.to_thread(upgrade, migrations, f"postgresql+asyncpg://{server}/{name}")
    bare = await bare_event_delays(nats_url, 200)
    served = start_stack(server, nats_url, namespace, root)
    try:
        stack = Stack(server, *served)
        measured = await write_to_progress(stack, nats_url, namespace, households, writes, rate)
    finally:
        for process in reversed(served):
            process.stop()
    to_progress = delays_ms(measured["to_progress"])
    latency = delays_ms(measured["latency"])
    raw = delays_ms(bare)
    return {
        "households": households,
        "writes": writes,
        "rate_per_s": rate,
        "write_answer_to_progress": to_progress,
        "write_answer_to_event_on_stream": delays_ms(measured["to_stream"]),
        "baseline_write_latency": latency,
        "baseline_bare_publish_to_arrival": raw,
        "progress_poll_every_ms": POLL_SECONDS * 1000,
        "progress_poll_answer": delays_ms(measured["polls"]),
        "progress_vs_write_latency": {
            k: round(to_progress[k] / latency[k], 1) for k in ("median_ms", "p99_ms")
        },
        "progress_vs_bare_publish": {
            k: round(to_progress[k] / raw[k], 1) for k in ("median_ms", "p99_ms")
        },
    }


async def logbook_knows(dsn: str, households: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:

        async def known() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM household_ref WHERE mentor_team_id IS NOT NULL"
            )
            return bool(count == households)

        await until(known, "the logbook knows every household and its team")
    finally:
        await conn.close()


async def write_to_progress(
    stack: Stack, nats_url: str, namespace: str, households: int, writes: int, rate: float
) -> dict[str, list[float]]:
    """Paced writes, each timed from its answer to the poll that first counts it, and to its
    event's arrival from the LOGBOOK stream."""
    warm_up = 20
    async with (
        httpx.AsyncClient(
            base_url=stack.registry.url, headers={IDENTITY_HEADER: _token(ADMIN)}, timeout=30
        ) as registry,
        httpx.AsyncClient(base_url=stack.logbook.url, timeout=30) as logbook,
        httpx.AsyncClient(
            base_url=stack.analytics.url, headers={IDENTITY_HEADER: _token(ANALYST)}, timeout=30
        ) as analytics,
    ):
        teams = await register(registry, DELAY_SUBDISTRICTS, households)
        await logbook_knows(f"postgresql://{stack.server}/logbook", households)
        poller = Poller(analytics, interval=POLL_SECONDS)
        rng = random.Random(11)
        await paced_writes(logbook, teams, warm_up, rate, rng)

        async def warm() -> bool:
            return await poller.planned() == warm_up

        await until(warm, "analytics counts the warm-up writes")
        nc = await nats.connect(nats_url)
        arrivals = Arrivals()
        subscription = await nc.jetstream().subscribe(
            f"{namespace}logbook.>",
            cb=arrivals.on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        polling = asyncio.create_task(poller.run())
        try:
            sent, answered, ids = await paced_writes(logbook, teams, writes, rate, rng)

            async def all_counted() -> bool:
                return bool(poller.seen) and poller.seen[-1][2] >= warm_up + writes

            await until(all_counted, "analytics counts every write", within=60)
        finally:
            poller.stop.set()
            await polling
            await subscription.unsubscribe()
            await nc.close()
    # The writes are sequential: the n-th is in the totals once they count warm_up + n + 1.
    return {
        "to_progress": [
            poller.visible(answer, warm_up + n + 1) - answer for n, answer in enumerate(answered)
        ],
        "to_stream": [arrivals.seen[i] - answer for i, answer in zip(ids, answered, strict=True)],
        "latency": [a - s for s, a in zip(sent, answered, strict=True)],
        "polls": [b - a for a, b, _ in poller.seen],
    }


# 3. Progress at national size

MEASURES = (
    "target_households",
    "reached_households",
    "graduated_households",
    "planned",
    "in_progress",
    "completed",
    "cancelled",
    "amount_thb",
)
# Intervention i belongs to household k (scattered over the country); 60% completed, 10% under
# way, 20% planned, 10% cancelled; 1% superseded by a correction. Household k lies in one of 12
# villages of a sub-district; 5% graduated, 60% in progress; each fails 1 to 5 dimensions.
FACTS = [
    (
        "intervention_fact",
        """CREATE TEMP TABLE sub AS
           SELECT (row_number() OVER (ORDER BY code) - 1)::int AS n, code
           FROM area WHERE level = 'subdistrict'""",
    ),
    (
        "intervention_fact",
        """INSERT INTO intervention_fact
           SELECT md5('i' || i)::uuid, md5('h' || k)::uuid,
                  sub.code || lpad((1 + (k / $S) % 12)::text, 2, '0'),
                  d.dims[(1 + i % 5)::int],
                  d.menus[(1 + i % 5)::int] || '-0' || (1 + (i / 5) % 5),
                  CASE WHEN i % 10 < 6 THEN 'completed' WHEN i % 10 = 6 THEN 'in_progress'
                       WHEN i % 10 < 9 THEN 'planned' ELSE 'cancelled' END,
                  (100 * (1 + i % 200))::numeric(16, 2),
                  (i / 10) % 100 = 99
           FROM generate_series(0, $I - 1) AS i
           CROSS JOIN LATERAL (SELECT (i::bigint * 7919) % $H AS k) AS h
           JOIN sub ON sub.n = h.k % $S
           CROSS JOIN (SELECT ARRAY['health', 'living', 'education', 'income', 'public_access']
                              AS dims,
                              ARRAY['HLT', 'LIV', 'EDU', 'INC', 'PUB'] AS menus) AS d""",
    ),
    (
        "household_fact",
        """INSERT INTO household_fact
           SELECT md5('h' || k)::uuid, sub.code || lpad((1 + (k / $S) % 12)::text, 2, '0'), true,
                  CASE WHEN k % 20 = 0 THEN 'graduated' WHEN k % 20 < 13 THEN 'in_progress'
                       ELSE 'target' END,
                  ARRAY(SELECT d FROM unnest(ARRAY['health', 'living', 'education', 'income',
                                                   'public_access']) WITH ORDINALITY AS u(d, o)
                        WHERE (((k * 7 + k / 31) % 31) + 1) & (1 << (o::int - 1)) > 0
                        ORDER BY o),
                  coalesce(live.live, '{}')
           FROM generate_series(0, $H - 1) AS k
           JOIN sub ON sub.n = k % $S
           LEFT JOIN (
               SELECT household_id, jsonb_object_agg(dimension, n) AS live
               FROM (SELECT household_id, dimension, count(*) AS n FROM intervention_fact
                     WHERE NOT superseded AND status <> 'cancelled'
                     GROUP BY household_id, dimension) AS by_dimension
               GROUP BY household_id
           ) AS live ON live.household_id = md5('h' || k)::uuid""",
    ),
]
# What a household and an intervention count in (services/analytics/domain/contributions.py),
# by village and dimension ("all" or one), for the households and the counted interventions.
HOUSEHOLD_CELLS = """
    count(*) FILTER (WHERE d.dimension = 'all' OR d.dimension = ANY(h.dimensions))
        AS target_households,
    count(*) FILTER (WHERE CASE WHEN d.dimension = 'all' THEN h.live <> '{}'
                                ELSE h.live ? d.dimension END) AS reached_households,
    count(*) FILTER (WHERE h.status = 'graduated'
                     AND (d.dimension = 'all' OR d.dimension = ANY(h.dimensions)))
        AS graduated_households,
    0 AS planned, 0 AS in_progress, 0 AS completed, 0 AS cancelled, 0 AS amount_thb
    FROM household_fact AS h
    CROSS JOIN LATERAL (SELECT 'all' UNION SELECT unnest(h.dimensions)
                        UNION SELECT jsonb_object_keys(h.live)) AS d(dimension)"""
INTERVENTION_CELLS = """
    0, 0, 0,
    count(*) FILTER (WHERE i.status = 'planned'),
    count(*) FILTER (WHERE i.status = 'in_progress'),
    count(*) FILTER (WHERE i.status = 'completed'),
    count(*) FILTER (WHERE i.status = 'cancelled'),
    coalesce(sum(i.amount_thb) FILTER (WHERE i.status = 'completed'), 0)
    FROM intervention_fact AS i
    CROSS JOIN LATERAL (VALUES ('all'), (i.dimension)) AS d(dimension)
    WHERE NOT i.superseded AND i.status IS NOT NULL"""
SUMS = ", ".join(f"sum({m}) AS {m}" for m in MEASURES)
# Each household counts in its registration month, each intervention in the month of its last
# status (one of 36, from a hash of its id): the running sum of the months ends at the totals.
MONTH = "(date_trunc('month', now()) - make_interval(months => ({}) % 36))::date AS month"
ID_HASH = "('x' || substr({}::text, 1, 8))::bit(32)::int & 2147483647"
VILLAGE_PROGRESS = f"""
    SELECT area_code, dimension, {SUMS} FROM (
        SELECT h.area_code, d.dimension, {HOUSEHOLD_CELLS} GROUP BY 1, 2
        UNION ALL
        SELECT i.area_code, d.dimension, {INTERVENTION_CELLS} GROUP BY 1, 2
    ) AS cells GROUP BY 1, 2"""
VILLAGE_MONTHS = f"""
    SELECT area_code, dimension, month, {SUMS} FROM (
        SELECT h.area_code, d.dimension, {MONTH.format(ID_HASH.format("h.household_id"))},
               {HOUSEHOLD_CELLS} GROUP BY 1, 2, 3
        UNION ALL
        SELECT i.area_code, d.dimension, {MONTH.format(ID_HASH.format("i.intervention_id"))},
               {INTERVENTION_CELLS} GROUP BY 1, 2, 3
    ) AS cells GROUP BY 1, 2, 3"""
VILLAGE_MENUS = """
    SELECT area_code, menu_code, status, count(*) AS interventions,
           coalesce(sum(amount_thb) FILTER (WHERE status = 'completed'), 0) AS amount_thb
    FROM intervention_fact WHERE NOT superseded AND status IS NOT NULL GROUP BY 1, 2, 3"""


def rolled_up(
    table: str, keys: tuple[str, ...], sums: tuple[str, ...], villages: str, *, as_of: bool
) -> list[tuple[str, str]]:
    """Steps that total `villages` (grouped by village and `keys`) into `table` for every
    level, each from the level below: village, sub-district, district, province, country."""
    steps = [(table, f"CREATE TEMP TABLE {table}_8 AS {villages}")]
    columns = ", ".join(keys)
    totals = ", ".join(f"sum({s}) AS {s}" for s in sums)
    for level, below in ((6, 8), (4, 6), (2, 4), (0, 2)):
        area = f"left(area_code, {level})" if level else "'TH'"
        steps.append(
            (
                table,
                f"CREATE TEMP TABLE {table}_{level} AS SELECT {area} AS area_code, {columns},"
                f" {totals} FROM {table}_{below} GROUP BY 1, {columns}",
            )
        )
    names = ", ".join(("area_code", *keys, *sums))
    levels = " UNION ALL ".join(f"SELECT {names} FROM {table}_{n}" for n in (8, 6, 4, 2, 0))
    target = f"{names}, as_of" if as_of else names
    source = f"{names}, now()" if as_of else names
    steps.append((table, f"INSERT INTO {table} ({target}) SELECT {source} FROM ({levels}) AS a"))
    return steps


FILL = [
    *FACTS,
    *rolled_up("area_progress", ("dimension",), MEASURES, VILLAGE_PROGRESS, as_of=True),
    *rolled_up(
        "menu_progress",
        ("menu_code", "status"),
        ("interventions", "amount_thb"),
        VILLAGE_MENUS,
        as_of=False,
    ),
    *rolled_up("area_month", ("dimension", "month"), MEASURES, VILLAGE_MONTHS, as_of=False),
    ("vacuum analyze", "VACUUM ANALYZE"),
]


async def fill(dsn: str, households: int, interventions: int) -> dict[str, float]:
    """Fill the projections from generated facts, step by step; seconds per table."""
    conn = await asyncpg.connect(dsn)
    seconds: dict[str, float] = {}
    try:
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
        subdistricts = await conn.fetchval("SELECT count(*) FROM area WHERE level = 'subdistrict'")
        for n, (table, sql) in enumerate(FILL):
            started = time.perf_counter()
            sql = sql.replace("$S", str(subdistricts)).replace("$H", str(households))
            await conn.execute(sql.replace("$I", str(interventions)))
            seconds[table] = round(seconds.get(table, 0) + time.perf_counter() - started, 1)
            if n + 1 == len(FILL) or FILL[n + 1][0] != table:
                print(f"  filled {table} in {seconds[table]} s", file=sys.stderr, flush=True)
    finally:
        await conn.close()
    return seconds


async def timed(times: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(min(20, times)):  # warm up: pools, caches, first plans
        await call()
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        spent.append(time.perf_counter() - started)
    return spent


async def query(
    server: str, nats_url: str, households: int, interventions: int, requests: int
) -> dict[str, Any]:
    database_url = f"postgresql+asyncpg://{server}/analytics_national"
    dsn = f"postgresql://{server}/analytics_national"
    await asyncio.to_thread(upgrade, ANALYTICS_MIGRATIONS, database_url)
    started = time.perf_counter()
    steps = await fill(dsn, households, interventions)
    filled = time.perf_counter() - started
    conn = await asyncpg.connect(dsn)
    try:
        rows = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("area_progress", "menu_progress", "area_month")
        }
        national = await conn.fetchrow(
            "SELECT target_households, planned + in_progress + completed + cancelled AS counted"
            " FROM area_progress WHERE area_code = 'TH' AND dimension = 'all'"
        )
        assert national["target_households"] == households, national
        settings = AnalyticsSettings(
            database_url=database_url, nats_url=nats_url, consumer_enabled=False
        )
        app = create_analytics(settings)
        figures: dict[str, Any] = {}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://analytics",
                headers={IDENTITY_HEADER: _token(ANALYST)},
            ) as client,
        ):

            async def get(path: str) -> None:
                response = await client.get(path)
                assert response.status_code == 200, f"{path}: {response.status_code}"

            async def lookup() -> None:
                await conn.fetchrow(
                    "SELECT * FROM area_progress WHERE area_code = $1 AND dimension = 'all'",
                    "300101",
                )

            healthz = delays_ms(await timed(requests, lambda: get("/healthz")))
            bare = delays_ms(await timed(requests, lookup))
            for area in ("TH", "30", "3001", "300101"):
                for suffix in ("", "/children", "/series"):
                    path = f"/v1/progress/{area}{suffix}"
                    spent = delays_ms(await timed(requests, partial(get, path)))
                    figures[path] = {
                        **spent,
                        "median_vs_healthz": round(spent["median_ms"] / healthz["median_ms"], 1),
                        "median_vs_bare_lookup": round(spent["median_ms"] / bare["median_ms"], 1),
                    }
    finally:
        await conn.close()
    return {
        "note": "projections filled by set-based SQL from generated facts: what the events "
        "would have produced (villages, sub-districts, districts, provinces, TH)",
        "households": households,
        "interventions": interventions,
        "counted_interventions": national["counted"],
        "projection_rows": rows,
        "fill_seconds": round(filled, 1),
        "fill_steps_seconds": steps,
        "requests_each": requests,
        "baseline_healthz_in_process": healthz,
        "baseline_bare_asyncpg_pk_lookup": bare,
        "progress": figures,
    }


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="pinpoint-bench-"))
    postgres = LocalPostgres(root / "pg", port=free_port())
    broker = LocalNats(root / "nats" / "store", port=free_port())
    postgres.start()
    broker.start()
    server = f"postgres@127.0.0.1:{postgres.port}"
    report: dict[str, Any] = {"machine_cores": os.cpu_count()}
    try:
        if "throughput" in args.parts:
            report["throughput"] = await throughput(postgres, broker.url, args.events)
            print(json.dumps(report["throughput"], indent=2), file=sys.stderr, flush=True)
        if "delay" in args.parts:
            report["delay"] = await delay(
                server, broker.url, root, args.delay_households, args.writes, args.rate
            )
            print(json.dumps(report["delay"], indent=2), file=sys.stderr, flush=True)
        if "query" in args.parts:
            report["query"] = await query(
                server, broker.url, args.households, args.interventions, args.requests
            )
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)  # the servers' files
    print(json.dumps(report, indent=2, default=str))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events for the throughput")
    parser.add_argument("--rate", type=float, default=20.0, help="paced writes a second")
    parser.add_argument("--writes", type=int, default=600, help="paced writes for the delay")
    parser.add_argument("--delay-households", type=int, default=120)
    parser.add_argument("--households", type=int, default=1_000_000, help="national size")
    parser.add_argument("--interventions", type=int, default=10_000_000, help="national size")
    parser.add_argument("--requests", type=int, default=200, help="requests per route")
    parser.add_argument(
        "--parts", default="throughput,delay,query", help="which of throughput, delay, query"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    if args.quick:
        args.events, args.writes, args.delay_households = 1_000, 40, 12
        args.households, args.interventions, args.requests = 10_000, 100_000, 30
    return args


if __name__ == "__main__":
    asyncio.run(main(arguments()))
