"""NATS killed (SIGKILL) and started again while writes go through all three services.

Writes go on while NATS is away (their events wait in the outboxes); when it is back the
relays publish what waited, the consumers take up where their acks left off, and what a
consumer applied but could not ack comes again and changes nothing.
"""

from __future__ import annotations

import asyncio

from pinpoint.devservers import LocalNats
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from tests.faults.support import (
    Services,
    kill,
    loaded,
    pending_outbox,
    prove_nothing_lost,
    short_ack_wait,
    until_written,
)


async def test_nats_killed_during_the_load_loses_no_write_and_counts_nothing_twice(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    dedicated_nats: LocalNats,
) -> None:
    own = {"nats_url": dedicated_nats.url, "nats_connect_timeout_seconds": 0.5}
    registry_settings = registry_settings.model_copy(update=own)
    logbook_settings = logbook_settings.model_copy(update=own)
    analytics_settings = analytics_settings.model_copy(update=own)
    services = Services(registry_settings, logbook_settings, analytics_settings, dedicated_nats.url)
    await short_ack_wait(dedicated_nats.url, services.namespace)
    async with loaded(services) as (load, writing, _):
        kill(dedicated_nats.process)
        struck = load.ledger.answered
        await until_written(load.ledger, struck + 30, writing)  # writes go on while NATS is away
        assert await pending_outbox(logbook_settings) > 0
        await asyncio.to_thread(dedicated_nats.start)

        await writing
        counted = await prove_nothing_lost(services, load.ledger)
    assert load.ledger.answered > struck + 30
    assert all(counted.values())
