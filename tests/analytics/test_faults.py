"""Analytics keeps the right totals through faults: its own restart, and NATS going away.

Each test writes one scripted history in two halves through the registry and the logbook, puts
a fault between the halves, and ends by comparing analytics' totals for every area with totals
computed from the services' own records, and the events analytics recorded as applied with the
events the streams hold: each one once, none lost, none applied twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from pinpoint.devservers import LocalNats, free_port
from services.analytics.app import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.analytics.history import (
    AFTER_BOTH_HALVES,
    AFTER_FIRST_HALF,
    Script,
    applied_by,
    applied_once,
    settled,
)
from tests.analytics.support import expected_totals, progress_matches
from tests.conftest import ClientFactory, db_rows, running


async def test_analytics_restarted_half_way_applies_the_rest_and_nothing_twice(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
) -> None:
    script = Script(as_caller, logbook_as, registry_settings, logbook_settings)
    nats_url = analytics_settings.nats_url
    async with running(create_analytics(analytics_settings)) as first:
        started = await script.first_half()
        households, interventions = await script.records()
        assert expected_totals(households, interventions, "TH") == AFTER_FIRST_HALF
        await progress_matches(as_caller("analyst", "TH", app=first), households, interventions)
        half = await applied_once(script, analytics_settings, nats_url)
        assert applied_by(first) == half

    await script.second_half(started, known=True)

    async with running(create_analytics(analytics_settings)) as second:
        households, interventions = await script.records()
        assert expected_totals(households, interventions, "TH") == AFTER_BOTH_HALVES
        await progress_matches(as_caller("analyst", "TH", app=second), households, interventions)
        total = await applied_once(script, analytics_settings, nats_url)
        # The new app took up where the first left off: only the second half was new to it.
        assert applied_by(second) == total - half > 0


@pytest.fixture
async def dedicated_nats(tmp_path: Path) -> AsyncIterator[LocalNats]:
    """A NATS server of the test's own, which it may stop and start again."""
    server = LocalNats(tmp_path / "nats" / "store", port=free_port())
    yield server
    server.stop()


async def pending_outbox(settings: RegistrySettings | LogbookSettings) -> int:
    (row,) = await db_rows(settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return int(row["count"])


async def test_nats_restarted_half_way_loses_nothing_and_doubles_nothing(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    caller_clients: ClientFactory,
    dedicated_nats: LocalNats,
) -> None:
    # Not `as_caller`: it starts a registry on the session's NATS, and two relays would then
    # share one outbox table.
    own = {"nats_url": dedicated_nats.url, "nats_connect_timeout_seconds": 0.5}
    dedicated_nats.start()
    registry = create_registry(registry_settings.model_copy(update=own))
    logbook = create_logbook(
        logbook_settings.model_copy(update=own),
        registry_transport=httpx.ASGITransport(app=registry),
    )
    analytics_settings = analytics_settings.model_copy(update=own)
    analytics = create_analytics(analytics_settings)
    script = Script(
        partial(caller_clients, registry),
        partial(caller_clients, logbook),
        registry_settings,
        logbook_settings,
    )
    analyst = caller_clients(analytics, "analyst", "TH")
    async with running(registry), running(logbook), running(analytics):
        started = await script.first_half()
        households, interventions = await script.records()
        assert expected_totals(households, interventions, "TH") == AFTER_FIRST_HALF
        await progress_matches(analyst, households, interventions)
        await settled(script, analytics_settings, dedicated_nats.url)

        await asyncio.to_thread(dedicated_nats.stop)
        await script.second_half(started, known=False)
        # Every write of the second half succeeded; its events wait in the outboxes.
        assert await pending_outbox(registry_settings) > 0
        assert await pending_outbox(logbook_settings) > 0
        await asyncio.to_thread(dedicated_nats.start)

        households, interventions = await script.records()
        assert expected_totals(households, interventions, "TH") == AFTER_BOTH_HALVES
        await progress_matches(analyst, households, interventions)
        total = await applied_once(script, analytics_settings, dedicated_nats.url)
        assert applied_by(analytics) == total
