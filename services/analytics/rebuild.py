"""Build every projection again from the start of both streams, then swap it in.

The rebuild writes into fresh tables in their own schema while the live tables keep answering
and the live consumers keep applying new events. When the rebuild has caught up with both
streams, it pauses the live consumers (they take a shared advisory lock in every transaction;
the swap takes it exclusively), applies the last few events, and moves the fresh tables into
place in one transaction. The fresh `processed_event` holds the id of every event the rebuild
applied under the live consumers' names, so a live consumer that resumes skips those and
applies only what came after: nothing counts twice, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from services.analytics import events
from services.analytics.repository import LOCK_SPACE, PROJECTION_LOCK, REBUILD_LOCK_SPACE
from services.analytics.settings import AnalyticsSettings
from shared.bus import Bus
from shared.consumer import Consumer
from shared.db import create_engine, create_sessionmaker
from shared.events import Event

logger = logging.getLogger(__name__)

# The projections: everything derived from the streams (the area names are reference data).
PROJECTIONS = (
    "processed_event",
    "household_fact",
    "intervention_fact",
    "area_progress",
    "area_month",
    "menu_progress",
)
FRESH, RETIRED = "analytics_rebuild", "analytics_retired"
Progress = Callable[[str, int, int], None]


@dataclass
class Replay:
    """One stream replayed from its first event into the fresh tables."""

    consumer: Consumer
    subscription: Any = None
    buffer: deque[tuple[Msg, Event]] = field(default_factory=deque)
    exhausted: bool = False
    last_seq: int = 0
    head: int = 0

    async def start(self) -> None:
        js = await self.consumer.bus.jetstream()
        self.head = (await js.stream_info(self.consumer.stream)).state.last_seq
        self.subscription = await js.pull_subscribe(
            "",
            stream=self.consumer.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                max_deliver=self.consumer.max_deliver + 1,
                max_ack_pending=self.consumer.batch_size * 10,
                inactive_threshold=300.0,
            ),
        )

    async def refill(self, progress: Progress | None) -> None:
        """Fetch the next batch into the buffer; note when the stream has no more for now.

        Not before every event it gave was settled: one that failed comes again after a
        delay, and a replay that stopped waiting for it would leave it out for good.
        """
        self.exhausted = False
        while not self.buffer and not self.exhausted:
            try:
                messages = await self.subscription.fetch(self.consumer.batch_size, timeout=1)
            except (NatsTimeoutError, TimeoutError):
                info = await self.subscription.consumer_info()
                self.exhausted = info.num_pending == 0 and info.num_ack_pending == 0
                continue
            self.buffer.extend(await self.consumer.parse(messages))
            last = messages[-1].metadata
            self.last_seq = max(self.last_seq, last.sequence.stream)
            self.head = max(self.head, self.last_seq + last.num_pending)
            if progress is not None:
                progress(self.consumer.stream, self.last_seq, self.head)

    async def stop(self) -> None:
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()


async def replay(replays: list[Replay], progress: Progress | None = None) -> None:
    """Apply every stream's events until none has more, in the order they happened across
    the streams, as the live consumers met them: the totals do not depend on the order, but
    the month in which a household counts as reached does (by the event that reached it)."""
    while True:
        for stream in replays:
            if not stream.buffer and not stream.exhausted:
                await stream.refill(progress)
        waiting = [stream for stream in replays if stream.buffer]
        if not waiting:
            return
        first = min(waiting, key=lambda stream: stream.buffer[0][1].time)
        until = min(
            (stream.buffer[0][1].time for stream in waiting if stream is not first),
            default=None,
        )
        chunk = [first.buffer.popleft()]
        while first.buffer and (until is None or first.buffer[0][1].time <= until):
            chunk.append(first.buffer.popleft())
        await first.consumer.apply_parsed(chunk)


@dataclass
class RebuildReport:
    applied: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    swap_seconds: float = 0.0


async def _prepare(connection: AsyncConnection) -> None:
    await connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {FRESH} CASCADE"))
    await connection.execute(sa.text(f"CREATE SCHEMA {FRESH}"))
    for table in PROJECTIONS:
        await connection.execute(
            sa.text(f"CREATE TABLE {FRESH}.{table} (LIKE public.{table} INCLUDING ALL)")
        )


async def _lock_tables(connection: AsyncConnection, within: float) -> None:
    """Lock the live tables without ever queueing behind (or deadlocking with) a reader:
    try NOWAIT, and again a moment later, for up to `within` seconds."""
    names = ", ".join(f"public.{t}" for t in PROJECTIONS)
    deadline = time.monotonic() + within
    while True:
        savepoint = await connection.begin_nested()
        try:
            await connection.execute(sa.text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE NOWAIT"))
        except DBAPIError:
            await savepoint.rollback()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        await savepoint.commit()
        return


async def rebuild(
    settings: AnalyticsSettings, *, progress: Progress | None = None, lock_within: float = 60.0
) -> RebuildReport:
    """Replay both streams into fresh projections and swap them in; see the module doc."""
    started = time.monotonic()
    engine = create_engine(settings)
    fresh_engine = create_async_engine(
        settings.database_url,
        pool_size=2,
        connect_args={
            "server_settings": {
                "application_name": "analytics-rebuild",
                # Projections resolve to the fresh tables; the dead letters stay shared.
                "search_path": f"{FRESH}, public",
            }
        },
    )
    bus = Bus(
        settings.nats_url,
        name="analytics-rebuild",
        namespace=settings.events_namespace,
        connect_timeout=settings.nats_connect_timeout_seconds,
        stream_replicas=settings.stream_replicas,
    )
    fresh = create_sessionmaker(fresh_engine)
    # Its facts are not the live ones: locking them must not wait on the live consumers.
    fresh.configure(info={LOCK_SPACE: REBUILD_LOCK_SPACE})
    replays = [
        Replay(
            Consumer(
                bus,
                fresh,
                stream=stream,
                durable=durable,
                handlers=handlers,
                on_begin=events.load_batch,
                before_commit=events.write_batch,
                batch_size=500,
            )
        )
        for stream, durable, handlers in (
            ("REGISTRY", events.REGISTRY_DURABLE, events.REGISTRY_HANDLERS),
            ("LOGBOOK", events.LOGBOOK_DURABLE, events.LOGBOOK_HANDLERS),
        )
    ]
    report = RebuildReport()
    try:
        async with engine.begin() as connection:
            await _prepare(connection)
        for stream in replays:
            await stream.start()
        # Catch up while the live tables answer and the live consumers go on.
        await replay(replays, progress)
        swap_started = time.monotonic()
        async with engine.begin() as connection:
            await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(PROJECTION_LOCK)))
            # The live consumers wait now; apply what they would have applied meanwhile.
            for stream in replays:
                stream.exhausted = False
            await replay(replays, progress)
            await _lock_tables(connection, lock_within)
            swap = [f"DROP SCHEMA IF EXISTS {RETIRED} CASCADE", f"CREATE SCHEMA {RETIRED}"]
            for table in PROJECTIONS:
                swap.append(f"ALTER TABLE public.{table} SET SCHEMA {RETIRED}")
                swap.append(f"ALTER TABLE {FRESH}.{table} SET SCHEMA public")
            for statement in swap:
                await connection.execute(sa.text(statement))
        report.swap_seconds = time.monotonic() - swap_started
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"DROP SCHEMA {RETIRED} CASCADE"))
            await connection.execute(sa.text(f"DROP SCHEMA {FRESH} CASCADE"))
        report.applied = {stream.consumer.stream: stream.consumer.applied for stream in replays}
    finally:
        for stream in replays:
            await stream.stop()
        await bus.close()
        await fresh_engine.dispose()
        await engine.dispose()
    report.seconds = time.monotonic() - started
    logger.info("analytics rebuilt", extra={"applied": report.applied})
    return report
