"""A consumer is delivered only the event types it has handlers for."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from nats.js.api import AckPolicy, ConsumerConfig

from services.registry.settings import RegistrySettings
from shared.bus import Bus
from shared.consumer import Consumer
from shared.db import create_engine, create_sessionmaker
from shared.events import Event, stream_name, subject_for
from tests.conftest import eventually, registry_rows

HANDLED, OTHER = "registry.household.registered", "registry.household.assigned"


def _event(event_type: str) -> Event:
    return Event(
        type=event_type,
        source="test",
        subject=str(uuid4()),
        area_code="240101",
        schema_version=1,
        data={},
    )


async def test_types_without_a_handler_are_never_delivered(
    registry_settings: RegistrySettings,
) -> None:
    namespace = registry_settings.events_namespace
    bus = Bus(registry_settings.nats_url, name="filter-test", namespace=namespace)
    engine = create_engine(registry_settings)
    applied: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        applied.append(event)

    stream = stream_name("REGISTRY", namespace)
    try:
        js = await bus.jetstream()
        # A durable made before its consumer had a filter (by an older release) gets one,
        # and keeps its other settings.
        await js.add_consumer(
            stream,
            ConsumerConfig(durable_name="filtered", ack_policy=AckPolicy.EXPLICIT, ack_wait=7),
        )
        events = [_event(OTHER), _event(HANDLED), _event(OTHER), _event(HANDLED)]
        for event in events:
            await js.publish(subject_for(event.type, namespace), event.model_dump_json().encode())
        consumer = Consumer(
            bus,
            create_sessionmaker(engine),
            stream="REGISTRY",
            durable="filtered",
            handlers={HANDLED: handler},
        )
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            await eventually(lambda: len(applied) == 2, what="both handled events applied")
            info = await js.consumer_info(stream, "filtered")
        finally:
            stop.set()
            await task
        assert [e.id for e in applied] == [events[1].id, events[3].id]
        assert info.config.filter_subjects == [subject_for(HANDLED, namespace)]
        assert info.config.ack_wait == 7
        assert info.delivered.consumer_seq == 2 and info.num_pending == 0
        recorded = await registry_rows(
            registry_settings, "SELECT event_id FROM processed_event WHERE consumer = 'filtered'"
        )
        assert {r["event_id"] for r in recorded} == {events[1].id, events[3].id}
    finally:
        await bus.close()
        await engine.dispose()
