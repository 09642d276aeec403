"""Durable JetStream pull consumers that apply each event exactly once in effect.

Each event is applied in a database transaction together with the record of its id, and
acked only after that commit: a redelivered or duplicated event changes nothing. A fetched batch
is applied in one transaction (one commit for up to `batch_size` events); if any event in it
fails, the batch is rolled back and its events are applied one by one, so one bad event never
holds up the others. An event that keeps failing goes to the dead-letter table after
`max_deliver` tries and the consumer moves on. A consumer is delivered only the event types it
has handlers for (its durable's subject filter).

While the database is away no event is tried: a batch met then is handed back to NATS at once
(not left to its ack wait), so that it comes again before the events behind it, in order, and
none of them is tried before the events it follows (a household's assignment before its
registration). Deliveries during an outage are not tries: an event's tries are the failures
of its own this consumer has seen (each replica counts its own, while it runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import FastAPI, Request
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Gauge
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared import tracing
from shared.bus import Bus
from shared.db import broken_off, database_unavailable, run, transaction
from shared.events import Event, stream_name, subject_for
from shared.health import CheckResult
from shared.jetstream import PullConsumer

logger = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
# Run once per transaction that applies events: `on_begin` first, with the batch's events (to
# take locks, or load in one go what the handlers will need), `before_commit` after the last
# handler (to write in one go what they added up to).
BeginHook = Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]
TransactionHook = Callable[[AsyncSession], Awaitable[None]]
# Tries of a transaction PostgreSQL breaks off to let another go on, before it counts as failed.
BROKEN_OFF_TRIES = 3
# The most events whose failures a consumer counts at once: past it, it forgets the one it has
# counted longest (most likely taken over by another replica), which may get a few more tries.
_TRIES_KEPT = 10_000

CONSUMER_LAG = Gauge(
    "pinpoint_consumer_lag",
    "Events in the stream not yet delivered to the consumer",
    ["service", "consumer"],
)
CONSUMER_EVENT_AGE = Gauge(
    "pinpoint_consumer_newest_event_age_seconds",
    "Age of the newest event the consumer applied (time since it happened)",
    ["service", "consumer"],
)

metadata = sa.MetaData()
processed_events = sa.Table(
    "processed_event",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column(
        "applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
dead_letters = sa.Table(
    "dead_letter",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("consumer", sa.Text, nullable=False),
    sa.Column("event_id", sa.Uuid),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("stream_seq", sa.BigInteger),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column(
        "failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def consumer_tables_ddl(op: Any) -> None:
    """Create the processed-event and dead-letter tables in a consuming service's migration."""
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("event_id", sa.Uuid),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("stream_seq", sa.BigInteger),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


class Consumer:
    """One durable pull consumer of one stream, shared by every replica of a service."""

    def __init__(
        self,
        bus: Bus,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        stream: str,
        durable: str,
        handlers: dict[str, Handler],
        on_begin: BeginHook | None = None,
        before_commit: TransactionHook | None = None,
        batch_size: int = 200,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.stream = stream_name(stream, bus.namespace)
        self.durable = durable
        self.handlers = handlers
        self.on_begin = on_begin
        self.before_commit = before_commit
        self.batch_size = batch_size
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        # The failures of each event being retried here, by its id (not its deliveries).
        self._tries: dict[UUID, int] = {}
        self.applied = 0
        # What /readyz and /metrics report.
        self.state = "starting"
        self.pending: int | None = None
        self.newest_event_time: datetime | None = None
        self.last_error: str | None = None
        service = bus.name or "pinpoint"
        self._lag = CONSUMER_LAG.labels(service, durable)
        CONSUMER_EVENT_AGE.labels(service, durable).set_function(self.newest_event_age)

    def newest_event_age(self) -> float:
        """Seconds since the newest applied event happened (0 before any)."""
        if self.newest_event_time is None:
            return 0.0
        return max((datetime.now(UTC) - self.newest_event_time).total_seconds(), 0.0)

    def status(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "state": self.state,
            "pending": self.pending,
            "applied": self.applied,
            "newest_event_age_seconds": round(self.newest_event_age(), 3),
            "last_error": self.last_error,
        }

    async def _subscribe(self) -> PullConsumer:
        js = await self.bus.jetstream()
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            # No limit on NATS's side: while the database is away an event is delivered again
            # and again and must never be dropped; `max_deliver` failures of the event itself
            # are counted here and dead-lettered.
            max_deliver=-1,
            max_ack_pending=self.batch_size * 10,
            # Only the types it has handlers for: the others (most of a stream, for some) are
            # never delivered, parsed, acked or recorded.
            filter_subjects=sorted(subject_for(t, self.bus.namespace) for t in self.handlers)
            or None,
        )
        return await PullConsumer.bind(await self.bus.client(), js, self.stream, config)

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and apply batches until `stop` is set, riding out NATS and database outages."""
        subscription = None
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    if subscription is None:
                        subscription = await self._subscribe()
                        self.state = "consuming"
                    messages = await self._fetch(subscription, stop)
                    await self.handle_batch(messages)
                    self.pending = messages[-1].metadata.num_pending if messages else 0
                    self._lag.set(self.pending)
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning(
                        "consumer %s failed, will retry: %r", self.durable, exc, exc_info=True
                    )
                    self.state, self.last_error = "retrying", repr(exc)[:500]
                    await _unsubscribe(subscription)
                    subscription = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self.state = "stopped"
            await _unsubscribe(subscription)

    async def _fetch(self, subscription: PullConsumer, stop: asyncio.Event) -> list[Msg]:
        """The next batch: the events waiting, up to `batch_size`; else the first to arrive
        within a second (with whatever came behind it); nothing once `stop` is set."""
        fetch = asyncio.ensure_future(subscription.fetch_first(self.batch_size, wait=1))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, NatsTimeoutError, TimeoutError):
                await fetch
            return []
        try:
            return fetch.result()
        except (NatsTimeoutError, TimeoutError):
            return []

    async def apply(
        self,
        session: AsyncSession,
        events: Sequence[Event],
        headers: Mapping[UUID, Mapping[str, str]] | None = None,
    ) -> int:
        """Apply the events this consumer has not applied yet, in order, inside `session`'s
        transaction; record their ids there too. Returns how many were applied.

        `headers` are the NATS headers of each event's message, by event id: each handler runs
        with the request ID and trace context they carry (a `consume {type}` span).
        """
        headers = headers or {}
        known = [event for event in events if event.type in self.handlers]
        if not known:
            return 0
        if self.on_begin is not None:
            await self.on_begin(session, known)
        first_time = set(
            (await run(session, _record_processed(self.durable, [e.id for e in known]))).scalars()
        )
        applied = 0
        for event in known:
            if event.id in first_time:
                first_time.discard(event.id)  # a copy later in the same batch is a duplicate
                carrier = headers.get(event.id)
                with tracing.consuming(event, carrier, durable=self.durable, stream=self.stream):
                    await self.handlers[event.type](session, event)
                applied += 1
        if applied and self.before_commit is not None:
            await self.before_commit(session)
        return applied

    def _applied(self, events: Sequence[Event], count: int) -> None:
        self.applied += count
        newest = max((e.time for e in events), default=None)
        if newest is None:
            return
        if self.newest_event_time is None or newest > self.newest_event_time:
            self.newest_event_time = newest

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Apply a batch in one transaction and ack it; on any failure, one by one."""
        await self.apply_parsed(await self.parse(messages))

    async def parse(self, messages: Sequence[Msg]) -> list[tuple[Msg, Event]]:
        """The messages' events; one that is not an event envelope is dead-lettered."""
        parsed: list[tuple[Msg, Event]] = []
        for message in messages:
            try:
                parsed.append((message, Event.model_validate_json(message.data)))
            except ValidationError as exc:
                await self._dead_letter(message, None, f"not an event envelope: {exc}")
        return parsed

    async def apply_parsed(self, parsed: Sequence[tuple[Msg, Event]]) -> None:
        """Apply parsed messages in one transaction and ack them; on failure, one by one.

        While tracing, the transaction is one `apply {durable}` span, and each event is applied
        in a `consume {type}` span of the trace that caused it, linked to that batch span: one
        trace per request stays whole across NATS, and the batch's commit is seen once.
        """
        if not parsed:
            return
        with tracing.consumer_batch(self.durable, self.stream, len(parsed)):
            await self._apply_parsed(parsed)

    async def _apply_parsed(self, parsed: Sequence[tuple[Msg, Event]]) -> None:
        events = [event for _, event in parsed]
        headers = _headers_by_event(parsed)
        started = time.perf_counter()
        try:
            count = await self._apply_in_one_transaction(events, headers)
        except Exception as exc:
            if database_unavailable(exc):
                # No event's fault: `run` waits, and the batch comes again before what follows.
                await _hand_back(message for message, _ in parsed)
                raise
            logger.info(
                "batch of %s failed in %s, applying one by one: %r",
                len(parsed),
                self.durable,
                exc,
            )
            await self._one_by_one(parsed)
            return
        self._applied(events, count)
        for message, _ in parsed:
            await message.ack()
        logger.debug("applied %s events in %.1f ms", count, (time.perf_counter() - started) * 1000)

    async def _apply_in_one_transaction(
        self, events: Sequence[Event], headers: Mapping[UUID, Mapping[str, str]]
    ) -> int:
        """Apply events in one transaction. One that PostgreSQL broke off so that another
        could go on (a deadlock, a serialization failure) left nothing behind and is tried
        again at once, a few times: it is no event's fault, so it neither splits the batch
        nor counts as one of an event's tries."""
        for attempt in range(1, BROKEN_OFF_TRIES + 1):
            try:
                async with transaction(self.sessionmaker) as session:
                    return await self.apply(session, events, headers)
            except Exception as exc:
                if attempt == BROKEN_OFF_TRIES or not broken_off(exc):
                    raise
                logger.info("%s: transaction broken off (%r), trying again", self.durable, exc)
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    async def _one_by_one(self, parsed: Sequence[tuple[Msg, Event]]) -> None:
        """Apply a failed batch's events one at a time, in order. The failed try and this can
        take longer than the ack wait: the events still waiting are told so at the start and
        every third of it, or NATS would hand them to another replica meanwhile (out of order
        there)."""
        told = -self.ack_wait
        for n, (message, event) in enumerate(parsed):
            if time.monotonic() - told > self.ack_wait / 3:
                for waiting, _ in parsed[n:]:
                    await waiting.in_progress()
                told = time.monotonic()
            try:
                await self._handle_one(message, event)
            except Exception:  # the database went away: the rest comes again behind it
                await _hand_back(waiting for waiting, _ in parsed[n + 1 :])
                raise

    async def handle(self, message: Msg) -> None:
        """Apply one message and ack it; nak it to retry; dead-letter it after the last try."""
        try:
            event = Event.model_validate_json(message.data)
        except ValidationError as exc:
            await self._dead_letter(message, None, f"not an event envelope: {exc}")
            return
        await self._handle_one(message, event)

    async def _handle_one(self, message: Msg, event: Event) -> None:
        try:
            count = await self._apply_in_one_transaction(
                [event], _headers_by_event([(message, event)])
            )
        except Exception as exc:
            if database_unavailable(exc):
                # Not a try of the event: `run` waits and the message comes again first.
                await _hand_back([message])
                raise
            tries = self._tries[event.id] = self._tries.get(event.id, 0) + 1
            if tries >= self.max_deliver:
                del self._tries[event.id]
                await self._dead_letter(message, event, repr(exc), tries)
            else:
                logger.warning(
                    "event %s failed (try %s), will retry",
                    event.id,
                    tries,
                    extra={"error": repr(exc)},
                )
                if len(self._tries) > _TRIES_KEPT:  # the oldest: another replica took it over
                    del self._tries[next(iter(self._tries))]
                await message.nak(delay=min(0.2 * 2**tries, 10))
            return
        self._tries.pop(event.id, None)
        self._applied([event], count)
        await message.ack()

    async def _dead_letter(
        self, message: Msg, event: Event | None, error: str, tries: int = 1
    ) -> None:
        async with transaction(self.sessionmaker) as session:
            await session.exec(
                sa.insert(dead_letters).values(
                    consumer=self.durable,
                    event_id=event.id if event else None,
                    subject=message.subject,
                    stream_seq=message.metadata.sequence.stream,
                    payload=message.data.decode("utf-8", "replace"),
                    error=error[:2000],
                    attempts=tries,
                )
            )
        logger.error(
            "event dead-lettered by %s",
            self.durable,
            extra={"subject": message.subject, "error": error[:200]},
        )
        await message.term()


async def _hand_back(messages: Iterable[Msg]) -> None:
    """Give messages back to NATS to deliver again now, in this order, ahead of newer ones; if
    NATS is away too, their ack wait brings them back instead."""
    for message in messages:
        try:
            await message.nak()
        except Exception:
            logger.debug("could not hand a message back; its ack wait will", exc_info=True)
            return


async def _unsubscribe(subscription: Any) -> None:
    """Leave a subscription before making another or stopping: left subscribed, it would hold
    the connection's drain at shutdown for the whole drain timeout."""
    if subscription is not None:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


def _record_processed(durable: str, event_ids: list[UUID]) -> Any:
    """Record event ids as applied; returns those not recorded before. The ids travel as one
    array parameter: one statement that compiles once, whatever the batch's size."""
    source = sa.select(
        sa.literal(durable, sa.Text).label("consumer"),
        sa.func.unnest(sa.cast(event_ids, ARRAY(sa.Uuid))).label("event_id"),
    )
    return (
        insert(processed_events)
        .from_select(["consumer", "event_id"], source)
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    )


def _headers_by_event(parsed: Sequence[tuple[Msg, Event]]) -> dict[UUID, Mapping[str, str]]:
    return {event.id: message.headers for message, event in parsed if message.headers}


async def dead_letter_rows(
    sessionmaker: async_sessionmaker[AsyncSession], limit: int = 100
) -> list[dict[str, Any]]:
    """The newest dead letters, for an endpoint or the CLI."""
    async with sessionmaker() as session:
        rows = (
            (
                await run(
                    session,
                    sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit),
                )
            )
            .mappings()
            .all()
        )
    return [
        {
            **row,
            "payload": json.loads(row["payload"])
            if row["payload"].startswith("{")
            else row["payload"],
        }
        for row in rows
    ]


@asynccontextmanager
async def consuming(app: FastAPI, consumers: list[Consumer]) -> AsyncIterator[None]:
    """Run consumers in the background for the life of a block; stop them between messages.

    They are kept on `app.state.consumers`, where `/readyz` finds them.
    """
    app.state.consumers = consumers
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop), name=f"consumer-{c.durable}") for c in consumers]
    try:
        yield
    finally:
        stop.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def consumers_ready(request: Request) -> CheckResult:
    """Ready when every consumer is subscribed; the detail shows each one's lag and state."""
    consumers: list[Consumer] = getattr(request.app.state, "consumers", [])
    return CheckResult(
        ok=all(c.state == "consuming" for c in consumers),
        detail={c.durable: c.status() for c in consumers},
    )
