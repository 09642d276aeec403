"""JetStream a batch at a time: pulled by a consumer, published by the outbox relay.

nats.py waits for each message of a batch on its own. Its `PullSubscription.fetch` makes a
task, a `wait_for` (another task) and a random UUID per message, about a third of what a
consumer that applies several thousand events a second spends; its `publish_async` makes a
`wait_for` on a semaphore, a random reply inbox and a future per message, more than half of the
relay's own time. Here one callback subscription on an inbox gathers what the server sends
for a whole batch, and the caller waits once:

- `PullConsumer.fetch_first`: a pull request ends when its batch is full or the server says
  there is nothing more (a status: 404, 408, or a 409 such as a leader change). Messages are
  the client's own `Msg`s, acked, nak'ed and read (`metadata`) as before.
- `BatchPublisher.publish`: a batch is done when the stream has acknowledged every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Sequence

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StatusCode
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

STATUS, DESCRIPTION = "Status", "Description"
# Beyond a request's own expiry, how long to wait for the server's word that it ended (a
# reconnect loses pending requests and their end with them).
_GRACE_SECONDS = 2.0


class PullConsumer:
    """Fetches batches of one durable consumer of one stream for this replica."""

    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self._nc = nc
        self.stream = stream
        self.durable = durable
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        # What the server sent and no fetch has taken yet: messages in the order they came.
        self._received: deque[Msg] = deque()
        self._wanted = 1  # messages the pending request asked for
        self._ended = asyncio.Event()  # it ended; its messages are in `_received`
        self._error: APIError | None = None

    @classmethod
    async def bind(
        cls, nc: NATS, js: JetStreamContext, stream: str, config: ConsumerConfig
    ) -> PullConsumer:
        """Create the durable consumer if it does not exist yet, and subscribe to this
        replica's inbox. One that exists keeps its settings (an operator's, or an older
        release's) but takes this configuration's subject filter, so the types delivered
        follow the code that handles them, and its delivery limit, since the code counts an
        event's tries itself (a limit on the server would drop an event without a word once
        an outage had used it up)."""
        assert config.durable_name
        config.name = config.durable_name
        try:
            existing = (await js.consumer_info(stream, config.durable_name)).config
        except NotFoundError:
            await js.add_consumer(stream, config=config)
        else:
            wanted = config.filter_subjects or []
            found = existing.filter_subjects or [s for s in [existing.filter_subject] if s]
            if sorted(found) != sorted(wanted) or existing.max_deliver != config.max_deliver:
                existing.filter_subject, existing.filter_subjects = None, wanted or None
                existing.max_deliver = config.max_deliver
                await js.add_consumer(stream, config=existing)
        puller = cls(nc, stream, config.durable_name)
        puller._sub = await nc.subscribe(puller._inbox, cb=puller._receive)
        return puller

    async def _receive(self, message: Msg) -> None:
        headers = message.headers or {}
        status = headers.get(STATUS)
        if not status:
            self._received.append(message)
            if len(self._received) >= self._wanted:
                self._ended.set()
        elif status == StatusCode.CONTROL_MESSAGE:
            return  # a heartbeat
        else:
            description = headers.get(DESCRIPTION) or ""
            if status == StatusCode.SERVICE_UNAVAILABLE or "deleted" in description.lower():
                # No such consumer (deleted: `run` makes it again). Any other 409 (a leader
                # change, a limit) and 404/408 only end the request.
                self._error = APIError(code=int(status), description=description)
            self._ended.set()

    async def fetch_first(self, batch: int, wait: float) -> list[Msg]:
        """The messages waiting now, up to `batch`; else the first to arrive within `wait`
        seconds (TimeoutError when none came). An idle consumer hears of an event at once, and
        a busy one takes `batch` a request.

        One request, `no_wait` with an expiry: the server answers at once with what waits, or
        with what first arrives, and ends the request either way (a `no_wait` request without
        an expiry could stay parked on the server while the consumer is at its ack limit).
        """
        if self._received:  # late messages of a request given up on: deliver them first
            return self._take(batch)
        self._wanted, self._error = batch, None
        self._ended.clear()
        request = {"batch": batch, "no_wait": True, "expires": int(wait * 1_000_000_000)}
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), wait + _GRACE_SECONDS)
        if self._received:  # what came is applied, even if the request then failed
            return self._take(batch)
        if self._error is not None:
            raise self._error
        raise NatsTimeoutError

    def _take(self, batch: int) -> list[Msg]:
        count = min(batch, len(self._received))
        return [self._received.popleft() for _ in range(count)]

    async def unsubscribe(self) -> None:
        """Leave the inbox; what arrived and was not taken is handed back at once (nak), not
        after the ack wait."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        while self._received:
            with contextlib.suppress(Exception):
                await self._received.popleft().nak()


class BatchPublisher:
    """Publishes batches of messages to JetStream, each waited for as a whole."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        self._reply = ""  # the current batch's reply subject: acks of an older one are stale
        self._expected = self._acked = 0
        self._failure: APIError | None = None
        self._done = asyncio.Event()
        self._batches = 0

    @classmethod
    async def start(cls, nc: NATS) -> BatchPublisher:
        publisher = cls(nc)
        publisher._sub = await nc.subscribe(f"{publisher._inbox}.*", cb=publisher._receive)
        return publisher

    async def publish(
        self, messages: Sequence[tuple[str, bytes, dict[str, str]]], *, within: float
    ) -> None:
        """Publish `(subject, payload, headers)` in order; return once the stream has stored
        (or, by `Nats-Msg-Id`, already had) every one. Raises the stream's first refusal, or
        TimeoutError when not all were acknowledged `within` seconds."""
        if not messages:
            return
        async with self._lock:
            self._batches += 1
            self._reply = f"{self._inbox}.{self._batches}"
            self._expected, self._acked, self._failure = len(messages), 0, None
            self._done.clear()
            for subject, payload, headers in messages:
                await self.nc.publish(subject, payload, reply=self._reply, headers=headers)
            await asyncio.wait_for(self._done.wait(), within)
            if self._failure is not None:
                raise self._failure

    async def _receive(self, message: Msg) -> None:
        if message.subject != self._reply:
            return  # an acknowledgement of a batch given up on
        status = (message.headers or {}).get(STATUS)
        if status:
            self._failure = (
                ServiceUnavailableError()  # no stream takes this subject
                if status == StatusCode.SERVICE_UNAVAILABLE
                else APIError(
                    code=int(status), description=(message.headers or {}).get(DESCRIPTION)
                )
            )
        elif b'"error"' in message.data:
            error = json.loads(message.data).get("error")
            if error:
                self._failure = APIError(**error)
        self._acked += 1
        if self._failure is not None or self._acked == self._expected:
            self._done.set()

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
