"""Once a second, during the load and after it: outbox backlogs, consumer lag, request latency.

- outbox backlog: the registry's and the logbook's outbox rows not yet published (SQL; less
  often while a look is slow, as it is while an import's transaction writes its events);
- consumer lag: events in each durable consumer not yet delivered or not yet acked (JetStream
  consumer info): analytics' two, and the registry's and logbook's own;
- analytics lag in seconds: the age of the oldest write analytics has not applied yet, whether
  its event still waits in an outbox (the row's time) or in analytics' consumers (when the
  stream stored it, read at the consumer's ack floor); 0 when nothing waits;
- latency of the requests answered in that second (median, p95, p99) and how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
from nats.js.errors import NotFoundError

from bench.proof_load import Recorder
from bench.support import percentile
from services.analytics.events import LOGBOOK_DURABLE, REGISTRY_DURABLE
from services.logbook.events import DURABLE as LOGBOOK_OWN_DURABLE
from services.registry.events import DURABLE as REGISTRY_OWN_DURABLE
from shared.events import stream_name
from shared.outbox import BACKLOG_SQL as BACKLOG

ANALYTICS = [("REGISTRY", REGISTRY_DURABLE), ("LOGBOOK", LOGBOOK_DURABLE)]
OTHERS = [("LOGBOOK", REGISTRY_OWN_DURABLE), ("REGISTRY", LOGBOOK_OWN_DURABLE)]


# The outbox's backlog (as the relay's gauge counts it, `BACKLOG_SQL`: every row from the first
# pending one to the newest) and the age of that first row, in one look. After a bulk import the
# pending index holds millions of rows already sent until a vacuum, and a look steps over all of
# them (60-80 ms a look in the national catch-up): one look a second, not one per figure.
PENDING = """
SELECT (SELECT max(seq) FROM outbox) - seq + 1, extract(epoch FROM now() - created_at)
FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1"""


# While a transaction writes millions of outbox rows (an import's), a look steps over each one it
# has written so far and takes seconds: the next look waits this many times as long (at most
# about 5% of a core on them), 30 s at most, and the samples between carry the last figures.
LOOK_SPACING = 20.0
LOOK_AT_LEAST_EVERY_SECONDS = 30.0


@dataclass
class OutboxLook:
    """One service's outbox as the sampler last saw it."""

    conn: asyncpg.Connection
    backlog: int = 0
    oldest_age: float = 0.0  # seconds, when it was looked at
    looked_at: float = 0.0
    next_look: float = 0.0

    async def look(self) -> None:
        """The backlog and the age of the oldest pending row (0, 0 if none), unless the last
        look was so slow that the next is not due yet."""
        now = time.perf_counter()
        if now < self.next_look:
            return
        row = await self.conn.fetchrow(PENDING)
        self.backlog, self.oldest_age = (int(row[0]), float(row[1])) if row else (0, 0.0)
        self.looked_at = now  # the age is the statement's `now()`: its start
        took = time.perf_counter() - now
        self.next_look = now + min(LOOK_SPACING * took, LOOK_AT_LEAST_EVERY_SECONDS)

    def age(self) -> float:
        """The oldest pending row's age now (it has aged since the look, if it was pending)."""
        if not self.oldest_age:
            return 0.0
        return self.oldest_age + time.perf_counter() - self.looked_at


@dataclass
class Sampler:
    registry_dsn: str
    logbook_dsn: str
    nats_url: str
    recorder: Recorder
    started: float = field(default_factory=time.perf_counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    # One look at a time: the once-a-second sampling and `until_caught_up` share two
    # connections, and asyncpg refuses a second query on a connection that is still busy.
    _looking: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def __aenter__(self) -> Sampler:
        self._registry = await asyncpg.connect(self.registry_dsn)
        self._logbook = await asyncpg.connect(self.logbook_dsn)
        self._outboxes = {
            "registry": OutboxLook(self._registry),
            "logbook": OutboxLook(self._logbook),
        }
        self._nc = await nats.connect(self.nats_url)
        self._js = self._nc.jetstream()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        await self._task
        await self._nc.close()
        await self._registry.close()
        await self._logbook.close()

    def mark(self, name: str) -> None:
        self.marks[name] = time.perf_counter() - self.started

    async def _waiting(self, stream: str, durable: str) -> int:
        info = await self._js.consumer_info(stream_name(stream, ""), durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _oldest_unapplied(self, stream: str, durable: str) -> float:
        """Seconds since the oldest event the consumer has not acked reached the stream (0 if
        none). The stream's time, not the event's own: an imported history's events happened
        years ago, but were written just now."""
        info = await self._js.consumer_info(stream_name(stream, ""), durable)
        if not (info.num_pending or info.num_ack_pending):
            return 0.0
        # The first message after the ack floor that the consumer takes (its subject filter's).
        after = info.ack_floor.stream_seq + 1
        times = []
        for subject in info.config.filter_subjects or [None]:
            with contextlib.suppress(NotFoundError):
                message = await self._js.get_msg(
                    stream_name(stream, ""), after, subject=subject, next=True
                )
                times.append((message.seq or 0, message.time or datetime.now(UTC)))
        if not times:
            return 0.0
        stored = min(times)[1]
        return max(0.0, (datetime.now(UTC) - stored).total_seconds())

    async def sample(self) -> dict[str, Any]:
        now = time.perf_counter()
        analytics = [await self._waiting(s, d) for s, d in ANALYTICS]
        others = [await self._waiting(s, d) for s, d in OTHERS]
        ages = [await self._oldest_unapplied(s, d) for s, d in ANALYTICS]
        for outbox in self._outboxes.values():
            await outbox.look()
            ages.append(outbox.age())
        answered = [s.seconds for s in self.recorder.samples[-5000:] if now - 1.0 < s.ended <= now]
        return {
            "t": round(now - self.started, 2),
            "outbox_registry": self._outboxes["registry"].backlog,
            "outbox_logbook": self._outboxes["logbook"].backlog,
            "analytics_pending": sum(analytics),
            "others_pending": sum(others),
            "analytics_lag_s": round(max(ages), 3),
            "requests": len(answered),
            "p50_ms": round(percentile(answered, 0.5) * 1000, 1) if answered else None,
            "p95_ms": round(percentile(answered, 0.95) * 1000, 1) if answered else None,
            "p99_ms": round(percentile(answered, 0.99) * 1000, 1) if answered else None,
        }

    async def _run(self) -> None:
        while not self._stop.is_set():
            tick = time.perf_counter()
            async with self._looking:
                self.rows.append(await self.sample())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), max(0.0, 1.0 - (time.perf_counter() - tick))
                )

    async def caught_up(self) -> bool:
        """No event waiting in any of the four consumers, no outbox row waiting. The outboxes
        are looked at only when the consumers have nothing left: through a long catch-up the
        consumers answer, and the catch-up does not pay for the proof's looks."""
        async with self._looking:
            for stream, durable in ANALYTICS + OTHERS:
                if await self._waiting(stream, durable):
                    return False
            for conn in (self._registry, self._logbook):
                if await conn.fetchval(BACKLOG):
                    return False
        return True

    async def until_caught_up(self, within: float) -> float:
        """Seconds until everything written so far is applied everywhere."""
        started = time.perf_counter()
        # Twice in a row a little apart: an event relayed between two looks is not missed.
        first: float | None = None
        settled = 0
        while settled < 2:
            if time.perf_counter() - started > within:
                raise TimeoutError(f"the consumers did not catch up within {within}s")
            looked = time.perf_counter()
            if await self.caught_up():
                first = looked if first is None else first
                settled += 1
            else:
                first, settled = None, 0
            # Close looks while it settles or early on; once a second in a long catch-up.
            long = first is None and time.perf_counter() - started > 10
            await asyncio.sleep(1.0 if long else 0.1)
        assert first is not None
        return first - started
