"""Batches from a durable JetStream pull consumer, gathered by one callback subscription.

nats.py's `PullSubscription.fetch` waits for each message of a batch on its own: a task, a
`wait_for` (another task) and a random UUID per message, about a third of what a consumer that
applies several thousand events a second spends. Here one callback subscription on an inbox
gathers every message the server sends for a pull request, and a fetch waits once for the
request to end: its batch is full, or the server said there is nothing more (status 404 or
408). Messages are the client's own `Msg`s: acked, nak'ed and read (`metadata`) as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StatusCode
from nats.js.errors import APIError, NotFoundError

STATUS, DESCRIPTION = "Status", "Description"
# Statuses that end a pull request in the ordinary way.
_ENDS = {StatusCode.NO_MESSAGES, StatusCode.REQUEST_TIMEOUT}
# Beyond a request's own expiry, how long to wait for the server's word that it ended (a
# reconnect loses pending requests and their end with them).
_GRACE_SECONDS = 2.0


class PullConsumer:
    """Fetches batches of one durable consumer of one stream for this replica."""

    def __init__(self, nc: NATS, js: JetStreamContext, stream: str, durable: str) -> None:
        self._nc = nc
        self._js = js
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
        """Create the durable consumer if it does not exist yet (as `pull_subscribe` does) and
        subscribe to this replica's inbox."""
        assert config.durable_name
        try:
            await js.consumer_info(stream, config.durable_name)
        except NotFoundError:
            config.name = config.durable_name
            await js.add_consumer(stream, config=config)
        puller = cls(nc, js, stream, config.durable_name)
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
            if status not in _ENDS:
                # 503: no such consumer (deleted: `run` makes it again); 409: the consumer was
                # deleted or a limit exceeded. The fetch raises it.
                self._error = APIError(code=int(status), description=headers.get(DESCRIPTION))
            self._ended.set()

    async def fetch_first(self, batch: int, wait: float) -> list[Msg]:
        """The messages waiting now, up to `batch`; else the first one to arrive within
        `wait` seconds, with whatever waits behind it by then (TimeoutError when none came).
        An idle consumer hears of an event at once, and a busy one takes `batch` a request."""
        taken = await self._request(batch, no_wait=True)
        if taken:
            return taken
        taken = await self._request(1, expires=wait)
        if taken and batch > 1 and taken[-1].metadata.num_pending:
            taken += await self._request(batch - 1, no_wait=True)
        if not taken:
            raise NatsTimeoutError
        return taken

    async def _request(
        self, batch: int, *, no_wait: bool = False, expires: float | None = None
    ) -> list[Msg]:
        """One pull request, waited out: the messages it brought (and any a lost earlier
        request brought late), oldest first."""
        if self._received:  # late messages of a request given up on: deliver them first
            return self._take(batch)
        self._wanted, self._error = batch, None
        self._ended.clear()
        request: dict[str, object] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        if expires is not None:
            request["expires"] = int(expires * 1_000_000_000)
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        wait = (expires or 0) + _GRACE_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), wait)
        if self._error is not None:
            raise self._error
        return self._take(batch)

    def _take(self, batch: int) -> list[Msg]:
        count = min(batch, len(self._received))
        return [self._received.popleft() for _ in range(count)]

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
