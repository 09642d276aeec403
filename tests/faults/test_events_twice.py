"""The same events delivered twice while writes go on: analytics counts nothing twice.

Two ways an event comes again, both in the middle of a write load: a copy of every event
published so far, under a new message id (what a copy sent after the stream's duplicate window
looks like: the stream takes it); and analytics' durable consumers deleted on NATS's side, so
that analytics makes them again and every event of both streams is delivered once more.
(`tests/analytics/test_totals.py::test_every_event_delivered_twice_changes_no_total` copies
events once after a quiet history; this one does both while the load runs and compares every
total with the services' own tables.)
"""

from __future__ import annotations

from uuid import uuid4

import nats
from fastapi import FastAPI

from services.analytics.app import create_app as create_analytics
from services.analytics.events import LOGBOOK_DURABLE as ANALYTICS_LOGBOOK
from services.analytics.events import REGISTRY_DURABLE as ANALYTICS_REGISTRY
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from shared.bus import ensure_streams
from shared.events import Event, stream_name, subject_for
from shared.events.registry import HouseholdRegistered, HouseholdStatusChanged
from tests.conftest import db_rows, eventually, running
from tests.faults.support import (
    Services,
    loaded,
    prove_nothing_lost,
    until_written,
)


async def publish_copies(nats_url: str, namespace: str) -> int:
    """Publish again every event the two streams hold, each under a new message id."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        copies = 0
        for stream in ("REGISTRY", "LOGBOOK"):
            name = stream_name(stream, namespace)
            last = (await js.stream_info(name)).state.last_seq
            for seq in range(1, last + 1):
                message = await js.get_msg(name, seq)
                assert message.subject is not None
                await js.publish(
                    message.subject,
                    message.data or b"",
                    headers={"Nats-Msg-Id": f"copy-{stream}-{seq}"},
                )
                copies += 1
        return copies
    finally:
        await nc.close()


async def delete_consumers(nats_url: str, namespace: str) -> None:
    """Delete analytics' durable consumers: the ones it makes again start from the first event."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for stream, durable in (("REGISTRY", ANALYTICS_REGISTRY), ("LOGBOOK", ANALYTICS_LOGBOOK)):
            await js.delete_consumer(stream_name(stream, namespace), durable)
    finally:
        await nc.close()


async def stream_messages(services: Services) -> int:
    nc = await nats.connect(services.nats_url)
    try:
        js = nc.jetstream()
        total = 0
        for stream in ("REGISTRY", "LOGBOOK"):
            total += (await js.stream_info(stream_name(stream, services.namespace))).state.messages
        return total
    finally:
        await nc.close()


async def outbox_rows(services: Services) -> int:
    total = 0
    for settings in (services.registry, services.logbook):
        (row,) = await db_rows(settings, "SELECT count(*) FROM outbox")
        total += int(row["count"])
    return total


def applied_by(app: FastAPI) -> int:
    """Events the app's consumers applied for the first time (a redelivery is not counted)."""
    return sum(consumer.applied for consumer in app.state.consumers)


async def test_every_event_delivered_again_during_the_load_counts_once(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
) -> None:
    services = Services(
        registry_settings, logbook_settings, analytics_settings, registry_settings.nats_url
    )
    async with loaded(services) as (load, writing, analytics):
        copies = await publish_copies(services.nats_url, services.namespace)

        await until_written(load.ledger, 80, writing)
        applied = applied_by(analytics)
        await delete_consumers(services.nats_url, services.namespace)

        async def redelivered() -> bool:  # analytics made its consumers again
            nc = await nats.connect(services.nats_url)
            try:
                js = nc.jetstream()
                name = stream_name("REGISTRY", services.namespace)
                info = await js.consumer_info(name, ANALYTICS_REGISTRY)
                return bool(info.delivered.stream_seq > 0)
            except Exception:
                return False
            finally:
                await nc.close()

        await eventually(redelivered, what="analytics' consumers made again")
        await writing
        counted = await prove_nothing_lost(services, load.ledger)
        assert applied_by(analytics) == sum(counted.values()) > applied
    assert await stream_messages(services) == await outbox_rows(services) + copies


async def test_a_status_change_delivered_after_a_newer_one_does_not_undo_it(
    analytics_settings: AnalyticsSettings,
) -> None:
    """What a redelivery does after a crash or a lost database: the consumer went on with the
    newer events, and the old one comes after them (seen in `test_postgres_restarted.py`)."""
    namespace = analytics_settings.events_namespace
    household = uuid4()
    registered = HouseholdRegistered(
        household_id=household,
        area_code="240101",
        house_code=None,
        status="target",
        survey_year=None,
        failed_indicators=["2560-20"],
        dimensions=["income"],
        mentor_team_id=None,
        member_count=0,
    )
    events = [Event.of(registered, source="registry", subject=household, area_code="240101")]
    for from_status, to_status in (("target", "in_progress"), ("in_progress", "graduated")):
        change = HouseholdStatusChanged(
            household_id=household,
            area_code="240101",
            from_status=from_status,
            to_status=to_status,
            reason="ตรวจสอบแล้ว",
            changed_by="district_officer@2401",
        )
        events.append(Event.of(change, source="registry", subject=household, area_code="240101"))
    registered_event, started, graduated = events
    async with running(create_analytics(analytics_settings)) as analytics:
        nc = await nats.connect(analytics_settings.nats_url)
        try:
            js = nc.jetstream()
            await ensure_streams(js, namespace)
            for event in (registered_event, graduated, started):  # the older change comes last
                await js.publish(
                    subject_for(event.type, namespace),
                    event.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(event.id)},
                )
        finally:
            await nc.close()
        await eventually(lambda: applied_by(analytics) == 3, what="the three events applied")
    rows = await db_rows(
        analytics_settings,
        "SELECT graduated_households, target_households FROM area_progress"
        " WHERE area_code = 'TH' AND dimension = 'all'",
    )
    assert [tuple(row) for row in rows] == [(1, 1)]
