"""A consumer whose database is away loses nothing: no try is counted, nothing dead-lettered,
nothing applied out of order."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from pinpoint.devservers import free_port
from services.registry.settings import RegistrySettings
from shared.bus import Bus
from shared.consumer import Consumer, database_unavailable
from shared.db import create_engine, create_sessionmaker
from shared.events import Event, stream_name, subject_for
from tests.conftest import Servers, eventually, registry_rows
from tests.shared.conftest import bare_event, one_event_for

REGISTERED, ASSIGNED = "registry.household.registered", "registry.household.assigned"


async def test_an_event_met_while_the_database_is_away_waits_for_it(
    servers: Servers, registry_settings: RegistrySettings
) -> None:
    namespace = f"outage{uuid4().hex[:8]}"
    bus = Bus(servers.nats.url, name="outage-test", namespace=namespace)
    # Nothing listens on this port: every connection is refused, as in a failover.
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    live = create_engine(registry_settings)
    applied: list[Event] = []
    failures: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        if len(failures) < 2:  # a failure of the event's own: in its batch, then on its own
            failures.append(event)
            raise RuntimeError("the event's own failure")
        applied.append(event)

    try:
        consumer, event, subscription = await one_event_for(
            bus, create_sessionmaker(engine), "outage", handler
        )
        js = await bus.jetstream()
        for delivery in range(1, consumer.max_deliver + 2):
            # Handed back at once each time (well within the 30 s ack wait).
            (message,) = await subscription.fetch_first(1, wait=5)
            assert message.metadata.num_delivered == delivery
            with pytest.raises(Exception) as raised:
                await consumer.handle_batch([message])
            assert database_unavailable(raised.value), raised.value
        # More deliveries than the tries an event gets: never dead-lettered, never dropped.
        info = await js.consumer_info(stream_name("REGISTRY", namespace), "outage")
        assert info.num_redelivered >= 1
        assert applied == failures == []

        # The database is back. A failure of the event's own is its first try, not its
        # seventh delivery: it is tried again, not dead-lettered.
        consumer.sessionmaker = create_sessionmaker(live)
        (message,) = await subscription.fetch_first(1, wait=5)
        assert message.metadata.num_delivered == consumer.max_deliver + 2
        await consumer.handle_batch([message])
        assert failures == [event, event] and applied == []
        (message,) = await subscription.fetch_first(1, wait=5)
        await consumer.handle_batch([message])
        assert applied == [event]
        dead = await registry_rows(
            registry_settings, "SELECT count(*) AS n FROM dead_letter WHERE consumer = 'outage'"
        )
        assert dead[0]["n"] == 0
    finally:
        await bus.close()
        await engine.dispose()
        await live.dispose()


async def test_a_batch_met_while_the_database_is_away_comes_again_before_what_follows(
    registry_settings: RegistrySettings,
) -> None:
    """Registered(H) fails with the database away; Assigned(H), published after it, must not
    be tried (and dead-lettered as naming a household not known yet) before it comes again."""
    namespace = registry_settings.events_namespace
    bus = Bus(registry_settings.nats_url, name="outage-order-test", namespace=namespace)
    engine = create_engine(registry_settings)
    registered, assigned = bare_event(REGISTERED), bare_event(ASSIGNED)
    applied: list[UUID] = []
    away = asyncio.Event()

    async def on_registered(session: object, event: Event) -> None:
        if not away.is_set():
            away.set()
            raise ConnectionRefusedError("the database is away")  # as a failover refuses
        applied.append(event.id)

    async def on_assigned(session: object, event: Event) -> None:
        if registered.id not in applied:
            raise LookupError("household not known yet")
        applied.append(event.id)

    consumer = Consumer(
        bus,
        create_sessionmaker(engine),
        stream="REGISTRY",
        durable="outage-order",
        handlers={REGISTERED: on_registered, ASSIGNED: on_assigned},
        max_deliver=2,
    )
    js = await bus.jetstream()
    stop = asyncio.Event()
    await consumer._subscribe()
    await js.publish(subject_for(REGISTERED, namespace), registered.model_dump_json().encode())
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(away.wait(), 10)
        await js.publish(subject_for(ASSIGNED, namespace), assigned.model_dump_json().encode())

        async def both() -> bool:
            return len(applied) == 2

        await eventually(both, within=15, what="both events applied")
    finally:
        stop.set()
        await task
        await bus.close()
        await engine.dispose()
    assert applied == [registered.id, assigned.id]
    dead = await registry_rows(
        registry_settings, "SELECT count(*) AS n FROM dead_letter WHERE consumer = 'outage-order'"
    )
    assert dead[0]["n"] == 0
