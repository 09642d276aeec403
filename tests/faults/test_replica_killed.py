"""A logbook replica killed (SIGKILL) with requests in flight, then started again.

The registry and the logbook run as `pinpoint serve` runs them, each in a process of its own.
The client sends each write again with its Idempotency-Key after the connection drops, as a
real client does: every write lands once, whether the killed process had committed it or not.
The killed replica runs with its relay off, so every event of the writes it committed is still
in its outbox when it dies: the replica that replaces it publishes them, and analytics counts
each once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from services.analytics.app import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from tests.conftest import eventually, running
from tests.faults.support import (
    Child,
    Load,
    Services,
    child_env,
    kill,
    pending_outbox,
    prove_nothing_lost,
    short_ack_wait,
    until_written,
)


async def test_a_replica_killed_mid_request_loses_no_write_and_writes_none_twice(
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    tmp_path: Path,
) -> None:
    services = Services(
        registry_settings, logbook_settings, analytics_settings, registry_settings.nats_url
    )
    await short_ack_wait(services.nats_url, services.namespace)
    registry = Child("registry", child_env(registry_settings), tmp_path / "registry.log")
    logbook = Child(
        "logbook",
        child_env(logbook_settings, PINPOINT_REGISTRY_URL=registry.url),
        tmp_path / "logbook.log",
    )
    try:
        await asyncio.gather(
            asyncio.to_thread(registry.start),
            asyncio.to_thread(logbook.start, PINPOINT_RELAY_ENABLED="false"),
        )
        async with (
            running(create_analytics(analytics_settings)),
            httpx.AsyncClient(base_url=registry.url, timeout=30) as to_registry,
            httpx.AsyncClient(base_url=logbook.url, timeout=30) as to_logbook,
        ):
            load = Load(to_registry, to_logbook, households=20)
            await load.prepare()
            writing = asyncio.create_task(load.run())
            await until_written(load.ledger, 40, writing)

            def strike() -> bool:  # kill it at a moment when it has requests in flight
                if load.ledger.in_flight[str(to_logbook.base_url)] < 2:
                    return False
                kill(logbook.process)
                return True

            await eventually(strike, what="the logbook with requests in flight")
            retried = load.ledger.retried
            # The events of every write it committed are still in its outbox.
            assert await pending_outbox(logbook_settings) > 0
            await asyncio.to_thread(logbook.start)

            await writing
            assert load.ledger.retried > retried  # the writes cut short were sent again
            counted = await prove_nothing_lost(services, load.ledger)
        assert all(counted.values())
    finally:
        logbook.stop()
        registry.stop()
