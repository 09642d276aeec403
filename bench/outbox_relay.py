"""Outbox relay throughput against bare `publish_async` of the same events, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from uuid import uuid4

import nats
import sqlalchemy as sa

from bench.support import local_servers
from services.registry.migrations import SCRIPT_LOCATION
from shared.bus import Bus, ensure_streams
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import Event
from shared.events.registry import HouseholdAssigned
from shared.migrations import upgrade
from shared.outbox import Outbox, OutboxRelay
from shared.settings import ServiceSettings


def _events(n: int) -> list[Event]:
    return [
        Event.of(
            HouseholdAssigned(
                household_id=uuid4(),
                area_code="24010101",
                mentor_team_id=uuid4(),
                previous_team_id=None,
            ),
            source="bench",
            subject=str(i),
            area_code="24010101",
        )
        for i in range(n)
    ]


async def bare_publish(nats_url: str, events: list[Event], namespace: str) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, namespace)
    started = time.perf_counter()
    futures = [
        await js.publish_async(
            f"{namespace}{e.type}", e.model_dump_json().encode(), headers={"Nats-Msg-Id": str(e.id)}
        )
        for e in events
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return len(events) / elapsed


async def relay(
    database_url: str, nats_url: str, events: list[Event], namespace: str, batch_size: int
) -> float:
    """Events/s of the relay as a service runs it (its `run` loop: batches, backlog gauge),
    from its start until no row is pending."""
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        await Outbox(session, source="bench", namespace=namespace).add_many(events)
    bus = Bus(nats_url, name="bench", namespace=namespace)
    relay = OutboxRelay(sessionmaker, bus, batch_size=batch_size)
    await bus.jetstream()
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(relay.run(stop))
    async with engine.connect() as conn:
        pending = sa.text("SELECT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL)")
        while (await conn.execute(pending)).scalar():  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    await bus.close()
    await engine.dispose()
    return len(events) / elapsed


async def main(n: int, batch_size: int) -> None:
    with local_servers() as (_, postgres, broker):
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/bench"
        await asyncio.to_thread(upgrade, SCRIPT_LOCATION, url)
        events = _events(n)
        baseline = await bare_publish(broker.url, events, "base.")
        measured = await relay(url, broker.url, events, "relay.", batch_size)
    print(
        json.dumps(
            {
                "events": n,
                "batch_size": batch_size,
                "bare_publish_async_per_s": round(baseline),
                "outbox_relay_per_s": round(measured),
                "relay_vs_bare": round(measured / baseline, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--batch-size", type=int, default=ServiceSettings.model_fields["relay_batch_size"].default
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch_size))
