"""Two replicas of every service on one PostgreSQL and one NATS: every total exact.

The relays of both registry replicas share one outbox, both logbook replicas another; both
analytics replicas share the two durable consumers. Writes go to the replicas in turn. In the
end every event is in its stream once, applied by analytics once, and every total equals what
the registry's and the logbook's own records say.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import AsyncExitStack
from uuid import UUID

import httpx
import nats
from fastapi import FastAPI

from services.analytics.app import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from shared.events import stream_name
from tests.analytics.history import AFTER_BOTH_HALVES, Script, applied_by, applied_once
from tests.analytics.support import expected_totals, progress_matches
from tests.conftest import ClientFactory, db_rows, running


def in_turn(caller_clients: ClientFactory, apps: list[FastAPI]) -> ClientFactory:
    """A client factory whose clients go to each replica in turn."""
    replicas: Iterator[FastAPI] = itertools.cycle(apps)

    def factory(role: str, area: str, team_id: UUID | None = None) -> httpx.AsyncClient:
        return caller_clients(next(replicas), role, area, team_id)

    return factory


async def outbox_rows(settings: RegistrySettings | LogbookSettings) -> int:
    (row,) = await db_rows(settings, "SELECT count(*) FROM outbox")
    return int(row["count"])


async def test_two_replicas_of_every_service_keep_every_total_exact(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    caller_clients: ClientFactory,
) -> None:
    # Not `as_caller`: it would start a third registry of its own.
    registries = [create_registry(registry_settings) for _ in range(2)]
    logbooks = [
        create_logbook(logbook_settings, registry_transport=httpx.ASGITransport(app=registry))
        for registry in registries
    ]
    analytics = [create_analytics(analytics_settings) for _ in range(2)]
    script = Script(
        in_turn(caller_clients, registries),
        in_turn(caller_clients, logbooks),
        registry_settings,
        logbook_settings,
    )
    async with AsyncExitStack() as stack:
        for app in (*registries, *logbooks, *analytics):
            await stack.enter_async_context(running(app))
        started = await script.first_half()
        await script.second_half(started, known=False)

        households, interventions = await script.records()
        assert expected_totals(households, interventions, "TH") == AFTER_BOTH_HALVES
        for replica in analytics:  # either replica answers with the same totals
            analyst = caller_clients(replica, "analyst", "TH")
            await progress_matches(analyst, households, interventions)
        total = await applied_once(script, analytics_settings, analytics_settings.nats_url)
        # Each event was applied by one replica or the other, never by both.
        assert sum(applied_by(replica) for replica in analytics) == total

    # Each outbox row reached its stream, and nothing else did.
    nc = await nats.connect(registry_settings.nats_url)
    try:
        js = nc.jetstream()
        namespace = registry_settings.events_namespace
        for stream, settings in (("REGISTRY", registry_settings), ("LOGBOOK", logbook_settings)):
            state = (await js.stream_info(stream_name(stream, namespace))).state
            assert state.messages == await outbox_rows(settings) > 0
    finally:
        await nc.close()
