"""A consumer is delivered only the event types it has handlers for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from uuid import UUID

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from services.registry.settings import RegistrySettings
from shared.bus import Bus
from shared.consumer import Consumer
from shared.db import create_engine, create_sessionmaker
from shared.events import Event, stream_name, subject_for
from shared.jetstream import PullConsumer
from tests.conftest import eventually, registry_rows
from tests.shared.conftest import bare_event

HANDLED, OTHER = "registry.household.registered", "registry.household.assigned"


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
        # A durable made before its consumer had a filter (by an older release, which also
        # let the server stop delivering after six tries) gets one, and no delivery limit,
        # and keeps its other settings.
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name="filtered", ack_policy=AckPolicy.EXPLICIT, ack_wait=7, max_deliver=6
            ),
        )
        events = [bare_event(OTHER), bare_event(HANDLED), bare_event(OTHER), bare_event(HANDLED)]
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
        assert info.config.max_deliver == -1
        assert info.delivered.consumer_seq == 2 and info.num_pending == 0
        recorded = await registry_rows(
            registry_settings, "SELECT event_id FROM processed_event WHERE consumer = 'filtered'"
        )
        assert {r["event_id"] for r in recorded} == {events[1].id, events[3].id}
    finally:
        await bus.close()
        await engine.dispose()


async def test_a_failed_batch_applied_one_by_one_keeps_its_events_from_other_replicas(
    registry_settings: RegistrySettings,
) -> None:
    namespace = registry_settings.events_namespace
    bus = Bus(registry_settings.nats_url, name="fallback-test", namespace=namespace)
    engine = create_engine(registry_settings)
    events = [bare_event(HANDLED) for _ in range(4)]
    poison = events[1].id

    async def slow(session: object, event: Event) -> None:
        await asyncio.sleep(0.3)  # four of these outlast the ack wait
        if event.id == poison:
            raise ValueError("not this one")

    async def recorded() -> set[object]:
        rows = await registry_rows(
            registry_settings, "SELECT event_id FROM processed_event WHERE consumer = 'fallback'"
        )
        return {r["event_id"] for r in rows}

    try:
        js = await bus.jetstream()
        for event in events:
            await js.publish(subject_for(event.type, namespace), event.model_dump_json().encode())
        consumer = Consumer(
            bus,
            create_sessionmaker(engine),
            stream="REGISTRY",
            durable="fallback",
            handlers={HANDLED: slow},
            max_deliver=1,  # the poison is dead-lettered at its first failure
            ack_wait=1.0,
        )
        # Another replica pulls from the same durable all along: an event whose ack wait ran
        # out while this one worked through its batch would go to it.
        stream = stream_name("REGISTRY", namespace)
        config = ConsumerConfig(
            durable_name="fallback", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0, max_deliver=-1
        )
        other = await PullConsumer.bind(await bus.client(), js, stream, config)
        stolen: list[object] = []

        async def replica() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    stolen.extend(await other.fetch_first(10, wait=0.1))

        async def taken() -> bool:  # this replica holds all four, in its batch
            return (await js.consumer_info(stream, "fallback")).num_ack_pending == len(events)

        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        await eventually(taken, within=5, what="the batch fetched")
        pulling = asyncio.create_task(replica())
        try:
            good = {events[0].id, events[2].id, events[3].id}
            await eventually(lambda: _equal(recorded(), good), what="the good events applied")
            await eventually(lambda: _settled(js, namespace), what="every event settled")
            info = await js.consumer_info(stream_name("REGISTRY", namespace), "fallback")
        finally:
            pulling.cancel()
            stop.set()
            await task
            await other.unsubscribe()
        assert stolen == [] and info.num_redelivered == 0
        dead = await registry_rows(
            registry_settings, "SELECT event_id FROM dead_letter WHERE consumer = 'fallback'"
        )
        assert [r["event_id"] for r in dead] == [poison]
    finally:
        await bus.close()
        await engine.dispose()


async def _equal(found: Awaitable[set[object]], expected: set[UUID]) -> bool:
    return await found == expected


async def _settled(js: JetStreamContext, namespace: str) -> bool:
    info = await js.consumer_info(stream_name("REGISTRY", namespace), "fallback")
    return not info.num_pending and not info.num_ack_pending
