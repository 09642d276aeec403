"""A consumer whose database is away loses nothing: no try is counted, nothing dead-lettered."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from pinpoint.devservers import free_port
from shared.bus import Bus
from shared.consumer import database_unavailable
from shared.db import create_sessionmaker
from shared.events import Event, stream_name
from tests.conftest import Servers
from tests.shared.conftest import one_event_for


async def test_an_event_met_while_the_database_is_away_waits_for_it(servers: Servers) -> None:
    namespace = f"outage{uuid4().hex[:8]}"
    bus = Bus(servers.nats.url, name="outage-test", namespace=namespace)
    # Nothing listens on this port: every connection is refused, as in a failover.
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    applied: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        applied.append(event)

    try:
        consumer, _, subscription = await one_event_for(
            bus, create_sessionmaker(engine), "outage", handler
        )
        js = await bus.jetstream()
        for delivery in range(1, consumer.max_deliver + 2):
            (message,) = await subscription.fetch_first(1, wait=5)
            assert message.metadata.num_delivered == delivery
            with pytest.raises(Exception) as raised:
                await consumer.handle_batch([message])
            assert database_unavailable(raised.value), raised.value
            await message.nak()  # what an expired ack wait does, sooner
        # More deliveries than the tries an event gets: never dead-lettered, never dropped.
        info = await js.consumer_info(stream_name("REGISTRY", namespace), "outage")
        assert info.num_redelivered >= 1
        (message,) = await subscription.fetch_first(1, wait=5)
        assert message.metadata.num_delivered == consumer.max_deliver + 2
        assert applied == []
    finally:
        await bus.close()
        await engine.dispose()
