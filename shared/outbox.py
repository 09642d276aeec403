"""The transactional outbox: an event is stored with the change that caused it, then relayed.

A relay takes pending rows with `FOR UPDATE SKIP LOCKED` (so several replicas share the work),
publishes them with `Nats-Msg-Id` = event id, waits for every PubAck, and only then marks them
sent. NATS being down delays events; it never fails or loses the write that made them.

While batches come full (a backlog: a bulk import's millions of events), a relay looks next past
the last row it published instead of from the first pending one: the rows it has marked sent
stay in the pending index until a vacuum, and a look from the start stepped over all of them
(26 ms a look on average through the national proof's catch-up of ten million). A row that
commits after rows above it were published is found by the look from the start that follows
a short batch, or by the one made every few seconds while batches stay full.

The rows a transaction has written and not yet committed are in the pending index too, and a
look steps over each of them: while a bulk import's transaction writes its millions of outbox
rows, a look from the start takes seconds and finds nothing. A relay whose look came back empty
and slow waits a few times as long before the next (a request's or an import's commit in its
own process wakes it at once), the backlog gauge is measured less often the longer it takes,
and the prune, which reads only the oldest rows and never the pending index, waits for a look
that is fast again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Column, Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from shared import tracing
from shared.bus import Bus
from shared.db import insert_rows, mark_events_staged, one_of, run, table_of, transaction
from shared.events import Event, EventData, subject_for
from shared.jetstream import BatchPublisher
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED

logger = logging.getLogger(__name__)


class OutboxMessage(SQLModel, table=True):
    """An event waiting to be published (or already published, until pruned)."""

    __tablename__ = "outbox"

    seq: int | None = Field(
        default=None, sa_column=Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    id: UUID = Field(unique=True)
    subject: str
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    headers: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    created_at: datetime | None = Field(
        default=None,  # set by the database
        sa_column=Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(sa.DateTime(timezone=True)))


def outbox_table_ddl(op: Any) -> None:
    """Create the outbox table in a service's migration (every service has its own)."""
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default="{}"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "outbox_pending", "outbox", ["seq"], postgresql_where=sa.text("sent_at IS NULL")
    )


def trace_headers(request: Request) -> dict[str, str]:
    """NATS headers that carry the request's ID and W3C trace context into its events.

    The context is the request's span while tracing, else the caller's `traceparent`.
    """
    headers: dict[str, str] = {}
    if request_id := current_request_id():
        headers[REQUEST_ID_HEADER] = request_id
    if not tracing.inject(headers) and (traceparent := request.headers.get("traceparent")):
        headers["traceparent"] = traceparent
    return headers


class Outbox:
    """Where a service's code puts the events of the change it is making."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        source: str,
        namespace: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.session = session
        self.source = source
        self.namespace = namespace
        self.headers = headers or {}

    def add(self, data: EventData, *, subject: str | UUID, area_code: str) -> Event:
        """Stage one event in the current transaction."""
        event = self.event(data, subject=subject, area_code=area_code)
        self.session.add(self._row(event, tracing.with_current_context(self.headers)))
        mark_events_staged(self.session)
        return event

    def event(self, data: EventData, *, subject: str | UUID, area_code: str) -> Event:
        """The event of this data, from this service, not staged yet (for `add_many`)."""
        return Event.of(data, source=self.source, subject=subject, area_code=area_code)

    async def add_many(self, events: Sequence[Event]) -> None:
        """Stage many events with one statement (bulk paths): plain rows, no ORM object each
        (making one costs tens of microseconds, more than its share of the statement)."""
        if not events:
            return
        headers = tracing.with_current_context(self.headers)
        rows = [self._values(e, headers) for e in events]
        await insert_rows(self.session, table_of(OutboxMessage), rows)
        mark_events_staged(self.session)

    def _row(self, event: Event, headers: dict[str, str]) -> OutboxMessage:
        return OutboxMessage(**self._values(event, headers))

    def _values(self, event: Event, headers: dict[str, str]) -> dict[str, Any]:
        # The headers carry the trace context of the span current when the event was staged
        # (a request's, or the consumer's that applied an event): the relay sends them on.
        return {
            "id": event.id,
            "subject": subject_for(event.type, self.namespace),
            "payload": event.model_dump(mode="json"),
            "headers": headers,
        }


# The events waiting: every row from the oldest pending one to the newest. Two index lookups,
# where a count of millions of pending rows takes seconds. Each relay takes its batches in
# `seq` order, so the rows between are pending but for the batches other replicas are
# publishing just then. (Two replicas' batches can reach the stream in either order: consumers
# keep a household's newest change by its time, not by its place in the stream.)
BACKLOG_SQL = """
SELECT coalesce(
    (SELECT max(seq) FROM outbox) - (SELECT min(seq) FROM outbox WHERE sent_at IS NULL) + 1, 0
)"""
PRUNE_EVERY_SECONDS = 60.0
# While batches come full, a relay still looks from the first pending row this often.
FULL_LOOK_EVERY_SECONDS = 5.0
NO_SEQ = 2**63 - 1  # above every `seq`: nothing is pending
# How often the relay measures its backlog for the gauge (not after every batch), and at least
# how many times as long as the last measure took (at most 2% of a core on it), up to a minute.
BACKLOG_EVERY_SECONDS = 5.0
BACKLOG_SPACING = 50.0
BACKLOG_MAX_EVERY_SECONDS = 60.0
# After an empty look from the start, the relay waits at least this many times as long as the
# look took, up to the ceiling (at most a fifth of a core on looks that find nothing). A request's
# or an import's commit wakes its own process's relay at once; an event a consumer staged, or a
# command-line import wrote from another process, waits at most the ceiling.
EMPTY_LOOK_SPACING = 4.0
EMPTY_LOOK_MAX_WAIT_SECONDS = 15.0
# An empty look slower than this stepped over rows not committed yet (a million of them: about
# 0.35 s; ten million rows sent and not yet vacuumed: about 0.08 s); the prune, which would step
# over them too, waits for a faster one, ten minutes at most.
SLOW_LOOK_SECONDS = 0.25
PRUNE_HELD_AT_MOST_SECONDS = 600.0


class OutboxRelay:
    """Publishes pending outbox rows to JetStream; run one per replica, as many as you like."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        batch_size: int = 500,
        idle_seconds: float = 0.5,
        ack_timeout: float = 10.0,
        retention: timedelta | None = None,
        full_look_seconds: float = FULL_LOOK_EVERY_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.ack_timeout = ack_timeout
        self.retention = retention
        self.full_look_seconds = full_look_seconds
        # The next look starts past this `seq` (the last full batch's), else from the start.
        self._after: int | None = None
        self._next_full_look = 0.0
        self._next_prune = 0.0
        self._next_backlog = 0.0
        self._looks_slow = False  # the last look found nothing, slowly: rows not committed yet
        self._wake = asyncio.Event()
        self._batch_publisher: BatchPublisher | None = None
        bus.on_reconnect(self.wake)  # publish what waited as soon as NATS is back

    def wake(self) -> None:
        """Look at the outbox now instead of at the next tick."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were confirmed by the stream (none only
        when a look from the first pending row found nothing to take).

        Raises NatsUnavailable, before taking any row, while NATS is away.
        """
        publisher = await self._publisher()
        if time.monotonic() >= self._next_full_look:
            self._after = None
        while True:
            from_start = self._after is None
            sent, last = await self._publish_batch(publisher, self._after)
            if sent == self.batch_size:
                if from_start:
                    self._next_full_look = time.monotonic() + self.full_look_seconds
                self._after = last
                return sent
            self._after = None
            if sent or from_start:
                return sent
            # Nothing past the last batch: a row below it may have committed since.

    async def _publish_batch(self, publisher: BatchPublisher, after: int | None) -> tuple[int, int]:
        """Publish up to a batch of pending rows (past `after`, if given) and mark them sent;
        returns how many, and the last one's `seq`."""
        table = table_of(OutboxMessage).c
        pending: sa.ColumnElement[bool] = table.sent_at.is_(None)
        if after is not None:
            pending = sa.and_(pending, table.seq > after)
        async with transaction(self.sessionmaker) as session:
            # Core columns, the payload as text: no ORM objects and no JSON round trip.
            rows = (
                await run(
                    session,
                    sa.select(
                        table.seq,
                        table.id,
                        table.subject,
                        sa.cast(table.payload, sa.Text).label("payload"),
                        table.headers,
                    )
                    .where(pending)
                    .order_by(table.seq)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True),
                )
            ).all()
            if not rows:
                return 0, 0
            await publisher.publish(
                [
                    (row.subject, row.payload.encode(), {**row.headers, "Nats-Msg-Id": str(row.id)})
                    for row in rows
                ],
                within=self.ack_timeout,
            )
            # The batch's `seq`s as one array parameter, through Core: a list of them (a
            # parameter each) through the ORM was a statement compiled anew in Python for
            # every batch. The server's work is the same either way (16-17 us an event at
            # national size: each mark writes a new version of the row).
            await run(
                session,
                sa.update(table_of(OutboxMessage))
                .where(one_of(table.seq, [row.seq for row in rows]))
                .values(sent_at=datetime.now(UTC)),
            )
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows), rows[-1].seq

    async def _publisher(self) -> BatchPublisher:
        """The publisher on the bus's current connection (a new one after the bus made a new
        connection); NatsUnavailable while NATS is away."""
        nc = await self.bus.client()
        if self._batch_publisher is None or self._batch_publisher.nc is not nc:
            if self._batch_publisher is not None:
                await self._batch_publisher.close()
            self._batch_publisher = await BatchPublisher.start(nc)
        return self._batch_publisher

    async def backlog(self) -> int:
        async with self.sessionmaker() as session:
            count = await session.scalar(sa.text(BACKLOG_SQL))
        return int(count or 0)

    async def prune(self, older_than: timedelta, *, batch: int = 10_000) -> int:
        """Delete up to `batch` rows published longer ago than `older_than` (oldest first).

        The stream keeps every event; the outbox only has to hold what is not yet published.
        Relays publish in `seq` order, so the published rows are those below the first pending
        one: the look reads the oldest `batch` rows by `seq` and takes those below the first
        pending row among them. It never reads the pending index (with ten million events
        pending and none yet old enough, a look by `sent_at` in `seq` order read all of them,
        20 s a minute; while an import's transaction wrote its millions, a look for the first
        pending row stepped over every one it had written so far). With fewer than `batch`
        committed rows before such uncommitted ones this look goes on into them too: a running
        relay holds its prune while its own looks are that slow.
        """
        table = table_of(OutboxMessage).c
        oldest = sa.select(table.seq, table.sent_at).order_by(table.seq).limit(batch).cte("oldest")
        first_pending = (
            sa.select(sa.func.min(oldest.c.seq)).where(oldest.c.sent_at.is_(None)).scalar_subquery()
        )
        published = sa.select(oldest.c.seq).where(
            oldest.c.seq < sa.func.coalesce(first_pending, NO_SEQ),
            oldest.c.sent_at < datetime.now(UTC) - older_than,
        )
        async with transaction(self.sessionmaker) as session:
            result = await run(
                session, sa.delete(table_of(OutboxMessage)).where(table.seq.in_(published))
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _prune_if_due(self) -> None:
        now = time.monotonic()
        if self.retention is None or now < self._next_prune:
            return
        if self._looks_slow and now < self._next_prune + PRUNE_HELD_AT_MOST_SECONDS:
            return  # it would step over the rows not committed yet that slowed the look
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        try:
            await self.prune(self.retention)
        except Exception:  # the database is away: the relay already said so
            logger.debug("outbox not pruned", exc_info=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set, backing off while NATS or the database is away."""
        delay = self.idle_seconds
        failing = False
        while not stop.is_set():
            await self._prune_if_due()
            self._wake.clear()
            looked = time.monotonic()
            try:
                sent = await self.relay_once()
                took = time.monotonic() - looked
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not once per retry
                    logger.warning(
                        "outbox relay cannot publish, will keep retrying",
                        extra={"error": repr(exc)},
                    )
                failing, sent, took = True, 0, 0.0
                delay = min(max(delay * 2, 0.5), 5.0)
            else:
                if failing:
                    logger.info("outbox relay publishes again")
                failing, delay = False, self.idle_seconds
            # An empty look this slow stepped over rows not committed yet: so would the prune.
            self._looks_slow = not sent and took > SLOW_LOOK_SECONDS
            await self._record_backlog()
            if sent == self.batch_size:
                continue
            wait = delay if sent or failing else empty_look_wait(took, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _record_backlog(self) -> None:
        if time.monotonic() < self._next_backlog:
            return
        started = time.monotonic()
        self._next_backlog = started + BACKLOG_EVERY_SECONDS
        try:
            OUTBOX_BACKLOG.set(await self.backlog())
        except Exception:  # the database is away: the relay already said so
            logger.debug("outbox backlog not measured", exc_info=True)
            return
        spaced = min(BACKLOG_SPACING * (time.monotonic() - started), BACKLOG_MAX_EVERY_SECONDS)
        self._next_backlog = started + max(BACKLOG_EVERY_SECONDS, spaced)


def empty_look_wait(took: float, idle_seconds: float) -> float:
    """How long a relay waits after a look from the start that found nothing and took `took`
    seconds: its idle tick, or a few times the look while looks are slow (they step over a
    transaction's uncommitted rows), at most the ceiling."""
    return max(idle_seconds, min(EMPTY_LOOK_SPACING * took, EMPTY_LOOK_MAX_WAIT_SECONDS))
