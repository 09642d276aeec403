"""Intervention writes per second through the logbook, and how long each event takes to follow.

One run starts its own PostgreSQL and NATS, migrates two logbook databases, and serves the
logbook with uvicorn in a child process (outbox relay on, registry consumer off: the households
are put straight into its read model). It then measures, each against a baseline of the same run:

- writes/s: `POST /v1/interventions` from `--concurrency` httpx clients, against the same rows
  (intervention, its first status, its outbox event) inserted by bare asyncpg transactions with
  the same concurrency into the second database;
- event delay: from a write's answer to its event's arrival from the LOGBOOK stream (a JetStream
  ordered consumer), under that load and for paced single writes, against bare
  `js.publish` → arrival of the same payload on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from bench.support import Served, delays_ms, local_servers, serve
from services.logbook.migrations import SCRIPT_LOCATION
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.bus import ensure_streams
from shared.events import Event, uuid7
from shared.events.logbook import InterventionRecorded
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY

NAMESPACE = "bench."
AREA = "24010101"
CALLER = Caller(subject="bench@2401", role=Role.district_officer, area="2401")


def _body(household_id: UUID) -> dict[str, Any]:
    return {
        "household_id": str(household_id),
        "dimension": "income",
        "menu_code": "INC-02",
        "description": "ฝึกอาชีพทำขนมไทยขายในตลาดชุมชน",
        "amount_thb": "1500.00",
        "planned_for": "2027-01-15",
    }


@dataclass
class Arrivals:
    """When each event arrived from the stream, by its subject (the intervention id)."""

    seen: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, message: Msg) -> None:
        self.seen[json.loads(message.data)["subject"]] = time.perf_counter()
        self.changed.set()

    async def wait_for(self, keys: list[str], within: float) -> list[str]:
        """Wait until every key has arrived or `within` seconds passed; the keys still missing."""
        deadline = time.perf_counter() + within
        while missing := [k for k in keys if k not in self.seen]:
            left = deadline - time.perf_counter()
            if left <= 0:
                return missing
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return []


async def _subscribe(nc: NATS, subject: str, arrivals: Arrivals) -> Any:
    js = nc.jetstream()
    return await js.subscribe(
        subject, cb=arrivals.on_message, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )


async def _run_bounded(
    count: int, concurrency: int, seconds: float, one: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run `one(i)` for i < count on `concurrency` workers, stopping early after `seconds`."""
    next_index = 0
    done = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            await one(index)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


# Baselines


async def bare_inserts(
    dsn: str, households: list[UUID], count: int, concurrency: int, seconds: float
) -> float:
    """Writes/s of the same three rows a recorded intervention makes, by bare asyncpg."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None

    async def one(index: int) -> None:
        household_id = households[index % len(households)]
        now = datetime.now(UTC)
        intervention_id, change_id = uuid7(), uuid7()
        event = Event.of(
            InterventionRecorded(
                intervention_id=intervention_id,
                household_id=household_id,
                area_code=AREA,
                person_id=None,
                dimension="income",
                menu_code="INC-02",
                agency_id=None,
                amount_thb=Decimal("1500.00"),
                status="planned",
                planned_for=None,
                completed_at=None,
                recorded_at=now,
            ),
            source="bench",
            subject=intervention_id,
            area_code=AREA,
        )
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO intervention (id, household_id, area_code, dimension, menu_code,"
                " description, amount_thb, planned_for, status, recorded_by, recorded_at)"
                " VALUES ($1, $2, $3, 'income', 'INC-02', $4, 1500.00, '2027-01-15',"
                " 'planned', $5, $6)",
                intervention_id,
                household_id,
                AREA,
                "ฝึกอาชีพทำขนมไทยขายในตลาดชุมชน",
                CALLER.subject,
                now,
            )
            await conn.execute(
                "INSERT INTO intervention_status_change (id, intervention_id, household_id,"
                " to_status, changed_by, changed_at) VALUES ($1, $2, $3, 'planned', $4, $5)",
                change_id,
                intervention_id,
                household_id,
                CALLER.subject,
                now,
            )
            await conn.execute(
                "INSERT INTO outbox (id, subject, payload, headers) VALUES ($1, $2, $3, '{}')",
                event.id,
                f"{NAMESPACE}{event.type}",
                event.model_dump_json(),
            )

    try:
        done, elapsed = await _run_bounded(count, concurrency, seconds, one)
    finally:
        await pool.close()
    return done / elapsed


async def bare_event_delays(nats_url: str, count: int) -> list[float]:
    """Seconds from `js.publish` of an intervention event to its arrival from the stream."""
    namespace = "bare."
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, namespace)
    arrivals = Arrivals()
    subscription = await _subscribe(nc, f"{namespace}logbook.>", arrivals)
    sent: dict[str, float] = {}
    try:
        for _ in range(count):
            subject = str(uuid4())
            payload = json.dumps({"subject": subject, "data": _body(uuid4())}).encode()
            sent[subject] = time.perf_counter()
            await js.publish(
                f"{namespace}logbook.intervention.recorded",
                payload,
                headers={"Nats-Msg-Id": subject},
            )
            await asyncio.sleep(random.uniform(0, 0.01))
        missing = await arrivals.wait_for(list(sent), within=10)
        assert not missing, f"{len(missing)} bare events never arrived"
    finally:
        await subscription.unsubscribe()
        await nc.close()
    return [arrivals.seen[k] - t for k, t in sent.items()]


# The logbook


def start_logbook(database_url: str, nats_url: str, relay_idle: float, log: Path) -> Served:
    env = {
        "PINPOINT_DATABASE_URL": database_url,
        "PINPOINT_NATS_URL": nats_url,
        "PINPOINT_EVENTS_NAMESPACE": NAMESPACE,
        "PINPOINT_CONSUMER_ENABLED": "false",
        "PINPOINT_RELAY_IDLE_SECONDS": str(relay_idle),
    }
    return serve("logbook", env, log)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the logbook never became ready")


@dataclass
class Written:
    answered: dict[str, float] = field(default_factory=dict)

    async def post(self, client: httpx.AsyncClient, household_id: UUID) -> None:
        response = await client.post("/v1/interventions", json=_body(household_id))
        if response.status_code != 201:
            raise RuntimeError(f"write failed: {response.status_code} {response.text}")
        self.answered[response.json()["id"]] = time.perf_counter()


async def logbook_writes(
    logbook: Served,
    nats_url: str,
    households: list[UUID],
    *,
    count: int,
    concurrency: int,
    seconds: float,
    paced: int,
) -> dict[str, Any]:
    token = mint_internal_token(CALLER, DEV_INTERNAL_KEY, ttl_seconds=3600)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    nc = await nats.connect(nats_url)
    await ensure_streams(nc.jetstream(), NAMESPACE)
    arrivals = Arrivals()
    subscription = await _subscribe(nc, f"{NAMESPACE}logbook.>", arrivals)
    try:
        async with httpx.AsyncClient(
            base_url=logbook.url, headers={IDENTITY_HEADER: token}, limits=limits, timeout=30
        ) as client:
            await _wait_ready(client)
            warm = Written()
            await _run_bounded(
                50, concurrency, 30, lambda i: warm.post(client, households[i % len(households)])
            )
            await arrivals.wait_for(list(warm.answered), within=10)

            loaded = Written()
            done, elapsed = await _run_bounded(
                count,
                concurrency,
                seconds,
                lambda i: loaded.post(client, random.choice(households)),
            )
            missing = await arrivals.wait_for(list(loaded.answered), within=30)

            calm = Written()
            for _ in range(paced):
                await calm.post(client, random.choice(households))
                await asyncio.sleep(random.uniform(0, 0.05))
            missing += await arrivals.wait_for(list(calm.answered), within=30)
    finally:
        await subscription.unsubscribe()
        await nc.close()
    if missing:
        raise RuntimeError(f"{len(missing)} events never arrived on the LOGBOOK stream")
    return {
        "writes": done,
        "writes_per_s": done / elapsed,
        "under_load": [arrivals.seen[k] - t for k, t in loaded.answered.items()],
        "paced": [arrivals.seen[k] - t for k, t in calm.answered.items()],
    }


async def seed_households(dsn: str, count: int) -> list[UUID]:
    """Households the logbook knows, straight into its read model (set-up, not measured)."""
    households = [uuid7() for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "household_ref",
            records=[(h, AREA, None, "target") for h in households],
            columns=["id", "area_code", "mentor_team_id", "status"],
        )
    finally:
        await conn.close()
    return households


async def main(args: argparse.Namespace) -> None:
    with local_servers() as (root, postgres, broker):
        logbook: Served | None = None
        try:
            server = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}"
            for name in ("logbook", "bare"):
                await asyncio.to_thread(upgrade, SCRIPT_LOCATION, f"{server}/{name}")
            dsn = f"postgresql://postgres@127.0.0.1:{postgres.port}"
            households = await seed_households(f"{dsn}/logbook", args.households)
            bare_households = await seed_households(f"{dsn}/bare", args.households)

            bare_writes = await bare_inserts(
                f"{dsn}/bare", bare_households, args.writes, args.concurrency, args.seconds
            )
            bare_delays = await bare_event_delays(broker.url, args.paced)
            logbook = start_logbook(
                f"{server}/logbook", broker.url, args.relay_idle, root / "logbook.log"
            )
            measured = await logbook_writes(
                logbook,
                broker.url,
                households,
                count=args.writes,
                concurrency=args.concurrency,
                seconds=args.seconds,
                paced=args.paced,
            )
            bare = delays_ms(bare_delays)
            under_load = delays_ms(measured["under_load"])
            paced = delays_ms(measured["paced"])
            print(
                json.dumps(
                    {
                        "writes": measured["writes"],
                        "concurrency": args.concurrency,
                        "relay_idle_seconds": args.relay_idle,
                        "bare_asyncpg_writes_per_s": round(bare_writes),
                        "logbook_writes_per_s": round(measured["writes_per_s"]),
                        "writes_vs_bare": round(measured["writes_per_s"] / bare_writes, 3),
                        "bare_publish_to_arrival": bare,
                        "event_delay_under_load": under_load,
                        "event_delay_paced": paced,
                        "paced_median_vs_bare": round(paced["median_ms"] / bare["median_ms"], 1),
                        "paced_p99_vs_bare": round(paced["p99_ms"] / bare["p99_ms"], 1),
                        "load_median_vs_bare": round(
                            under_load["median_ms"] / bare["median_ms"], 1
                        ),
                        "load_p99_vs_bare": round(under_load["p99_ms"] / bare["p99_ms"], 1),
                    },
                    indent=2,
                )
            )
        finally:
            if logbook is not None:
                logbook.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=3000, help="at most this many writes")
    parser.add_argument("--seconds", type=float, default=60, help="and for at most this long")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--paced", type=int, default=200, help="single writes for the delay")
    parser.add_argument(
        "--relay-idle", type=float, default=0.5, help="the relay's idle poll (the default's)"
    )
    asyncio.run(main(parser.parse_args()))
