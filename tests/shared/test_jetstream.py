"""JetStream a batch at a time: pulled in order and promptly, published once and whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from shared.jetstream import BatchPublisher, PullConsumer
from tests.conftest import Servers


@pytest.fixture
async def stream(servers: Servers) -> AsyncIterator[tuple[NATS, JetStreamContext, str]]:
    nc = await nats.connect(servers.nats.url)
    js = nc.jetstream()
    name = f"PULL_{uuid4().hex[:8].upper()}"
    await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    try:
        yield nc, js, name
    finally:
        await js.delete_stream(name)
        await nc.close()


async def _bind(nc: NATS, js: JetStreamContext, stream: str, durable: str) -> PullConsumer:
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=1000,
    )
    return await PullConsumer.bind(nc, js, stream, config)


async def _publish(js: JetStreamContext, stream: str, bodies: range) -> None:
    for n in bodies:
        await js.publish(f"{stream.lower()}.event", str(n).encode())


async def _take(puller: PullConsumer, batch: int, wait: float = 1.0) -> list[int]:
    messages = await puller.fetch_first(batch, wait=wait)
    for message in messages:
        await message.ack()
    return [int(m.data) for m in messages]


async def test_waiting_messages_come_in_order_a_batch_at_a_time(
    stream: tuple[NATS, JetStreamContext, str],
) -> None:
    nc, js, name = stream
    await _publish(js, name, range(25))
    puller = await _bind(nc, js, name, "batches")
    started = time.perf_counter()
    assert await _take(puller, 10) == list(range(10))
    assert await _take(puller, 10) == list(range(10, 20))
    assert await _take(puller, 10) == list(range(20, 25))  # fewer than asked: no waiting
    assert time.perf_counter() - started < 0.5
    with pytest.raises(NatsTimeoutError):
        await _take(puller, 10, wait=0.2)
    # A second replica's puller on the same durable shares its messages, never repeats one.
    other = await _bind(nc, js, name, "batches")
    await _publish(js, name, range(25, 31))
    seen = await _take(other, 3) + await _take(puller, 10)
    assert seen == list(range(25, 31))
    await puller.unsubscribe()
    await other.unsubscribe()


async def test_an_idle_consumer_gets_an_event_as_it_comes(
    stream: tuple[NATS, JetStreamContext, str],
) -> None:
    nc, js, name = stream
    puller = await _bind(nc, js, name, "idle")

    async def later() -> None:
        await asyncio.sleep(0.3)
        await _publish(js, name, range(3))

    publishing = asyncio.create_task(later())
    started = time.perf_counter()
    first = await _take(puller, 100, wait=5)
    waited = time.perf_counter() - started
    await publishing
    assert first[0] == 0 and 0.25 < waited < 1.5  # not the whole wait, nor a full batch
    rest = first[1:]
    while len(rest) < 2:
        rest += await _take(puller, 100)
    assert rest == [1, 2]
    await puller.unsubscribe()


async def test_a_deleted_consumer_is_an_error_not_an_empty_batch(
    stream: tuple[NATS, JetStreamContext, str],
) -> None:
    nc, js, name = stream
    puller = await _bind(nc, js, name, "deleted")
    await js.delete_consumer(name, "deleted")
    started = time.perf_counter()
    with pytest.raises(APIError):
        await puller.fetch_first(10, wait=5)
    assert time.perf_counter() - started < 1.5  # said at once, not after the wait
    await puller.unsubscribe()


async def test_a_batch_is_published_in_order_once_however_often_it_is_sent(
    stream: tuple[NATS, JetStreamContext, str],
) -> None:
    nc, js, name = stream
    publisher = await BatchPublisher.start(nc)
    batch = [
        (f"{name.lower()}.event", str(n).encode(), {"Nats-Msg-Id": f"id-{n}"}) for n in range(300)
    ]
    await publisher.publish(batch, within=5)
    await publisher.publish(batch[:100], within=5)  # sent again (a relay that lost its commit)
    assert (await js.stream_info(name)).state.messages == 300
    puller = await _bind(nc, js, name, "published")
    seen: list[int] = []
    while len(seen) < 300:
        seen += await _take(puller, 1000)
    assert seen == list(range(300))
    await puller.unsubscribe()
    await publisher.close()


async def test_a_message_no_stream_takes_fails_its_batch(
    stream: tuple[NATS, JetStreamContext, str],
) -> None:
    nc, js, name = stream
    publisher = await BatchPublisher.start(nc)
    batch = [(f"{name.lower()}.event", b"1", {}), ("nowhere.at.all", b"2", {})]
    with pytest.raises(APIError):
        await publisher.publish(batch, within=5)
    # The publisher goes on with the next batch.
    await publisher.publish([(f"{name.lower()}.event", b"3", {})], within=5)
    assert (await js.stream_info(name)).state.messages == 2
    await publisher.close()
