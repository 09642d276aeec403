"""Analytics killed (SIGKILL) in its own process while writes go on, then started again.

Whatever it had applied is committed with the ids of the events; whatever it was applying
when it died is rolled back; what it applied but had not acked comes again and changes
nothing. (`tests/analytics/test_faults.py` stops analytics cleanly between two halves of a
quiet history; this one kills it while events keep coming.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.conftest import db_rows, eventually, running
from tests.faults.support import (
    Child,
    Load,
    Services,
    asgi_client,
    child_env,
    kill,
    prove_nothing_lost,
    short_ack_wait,
    until_written,
)


async def applied(settings: AnalyticsSettings) -> int:
    (row,) = await db_rows(settings, "SELECT count(*) FROM processed_event")
    return int(row["count"])


async def test_analytics_killed_during_the_load_applies_every_event_once(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    tmp_path: Path,
) -> None:
    services = Services(
        registry_settings, logbook_settings, analytics_settings, registry_settings.nats_url
    )
    await short_ack_wait(services.nats_url, services.namespace)
    analytics = Child("analytics", child_env(analytics_settings), tmp_path / "analytics.log")
    registry = create_registry(registry_settings)
    logbook = create_logbook(logbook_settings, registry_transport=httpx.ASGITransport(app=registry))
    try:
        analytics.start()
        async with (
            running(registry),
            running(logbook),
            asgi_client(registry) as to_registry,
            asgi_client(logbook) as to_logbook,
        ):
            load = Load(to_registry, to_logbook)
            await load.prepare()
            writing = asyncio.create_task(load.run())
            await until_written(load.ledger, 50, writing)
            await eventually(lambda: applied(analytics_settings), what="analytics at work")

            kill(analytics.process)
            before = await applied(analytics_settings)
            await until_written(load.ledger, load.ledger.answered + 20, writing)
            assert await applied(analytics_settings) == before  # nobody applies while it is dead
            await asyncio.to_thread(analytics.start)

            await writing
            counted = await prove_nothing_lost(services, load.ledger)
        assert sum(counted.values()) > before > 0
    finally:
        analytics.stop()
