"""Durable JetStream pull consumers that apply each event exactly once in effect.

Each event is applied in one database transaction together with the record of its id, and
acked only after that commit: a redelivered or duplicated event changes nothing. An event that
keeps failing goes to the dead-letter table after `max_deliver` tries and the consumer moves on.
A consumer ignores event types it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus
from shared.db import run, transaction
from shared.events import Event, stream_name

logger = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]

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
        batch_size: int = 100,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.stream = stream_name(stream, bus.namespace)
        self.durable = durable
        self.handlers = handlers
        self.batch_size = batch_size
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.applied = 0

    async def _subscribe(self) -> Any:
        js = await self.bus.jetstream()
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            # One more than we allow ourselves: the last try is ours to dead-letter.
            max_deliver=self.max_deliver + 1,
            max_ack_pending=self.batch_size * 10,
        )
        return await js.pull_subscribe("", durable=self.durable, stream=self.stream, config=config)

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and apply batches until `stop` is set, riding out NATS and database outages."""
        subscription = None
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    if subscription is None:
                        subscription = await self._subscribe()
                    messages = await self._fetch(subscription, stop)
                    for message in messages:
                        await self.handle(message)
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning(
                        "consumer %s failed, will retry: %r", self.durable, exc, exc_info=True
                    )
                    subscription = None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            if subscription is not None:
                # Left subscribed, the connection's drain would wait out its whole timeout.
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def _fetch(self, subscription: Any, stop: asyncio.Event) -> list[Msg]:
        """The next batch, or nothing when none came within a second or `stop` was set."""
        fetch = asyncio.ensure_future(subscription.fetch(self.batch_size, timeout=1))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, NatsTimeoutError, TimeoutError):
                await fetch
            return []
        try:
            messages: list[Msg] = fetch.result()
        except (NatsTimeoutError, TimeoutError):  # nats.py raises either when nothing came
            return []
        return messages

    async def handle(self, message: Msg) -> None:
        """Apply one message and ack it; nak it to retry; dead-letter it after the last try."""
        try:
            event = Event.model_validate_json(message.data)
        except ValidationError as exc:
            await self._dead_letter(message, None, f"not an event envelope: {exc}")
            return
        handler = self.handlers.get(event.type)
        try:
            if handler is not None:
                async with transaction(self.sessionmaker) as session:
                    first_time = await session.exec(
                        insert(processed_events)
                        .values(consumer=self.durable, event_id=event.id)
                        .on_conflict_do_nothing()
                        .returning(processed_events.c.event_id)
                    )
                    if first_time.first() is not None:
                        await handler(session, event)
                        self.applied += 1
        except Exception as exc:
            attempts = message.metadata.num_delivered
            if attempts >= self.max_deliver:
                await self._dead_letter(message, event, repr(exc))
            else:
                logger.warning(
                    "event %s failed (try %s), will retry",
                    event.id,
                    attempts,
                    extra={"error": repr(exc)},
                )
                await message.nak(delay=min(0.2 * 2**attempts, 10))
            return
        await message.ack()

    async def _dead_letter(self, message: Msg, event: Event | None, error: str) -> None:
        async with transaction(self.sessionmaker) as session:
            await session.exec(
                sa.insert(dead_letters).values(
                    consumer=self.durable,
                    event_id=event.id if event else None,
                    subject=message.subject,
                    stream_seq=message.metadata.sequence.stream,
                    payload=message.data.decode("utf-8", "replace"),
                    error=error[:2000],
                    attempts=message.metadata.num_delivered,
                )
            )
        logger.error(
            "event dead-lettered by %s",
            self.durable,
            extra={"subject": message.subject, "error": error[:200]},
        )
        await message.term()


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
async def consuming(consumers: list[Consumer]) -> AsyncIterator[None]:
    """Run consumers in the background for the life of a block; stop them between messages."""
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
