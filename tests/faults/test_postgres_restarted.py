"""PostgreSQL stopped at once and started again while writes go through all three services.

The test has a PostgreSQL of its own (the session's stays up for the other tests). While it is
away a write is answered 503 and the client sends it again with its Idempotency-Key, as a real
client does; the consumers wait for the database without counting a try against any event.
Nothing answered 2xx is lost and nothing is written or counted twice.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar
from uuid import uuid4

from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from shared.settings import ServiceSettings
from tests.conftest import Servers
from tests.faults.conftest import OwnPostgres
from tests.faults.support import (
    Services,
    loaded,
    prove_nothing_lost,
    short_ack_wait,
    until_written,
)

S = TypeVar("S", bound=ServiceSettings)


async def test_postgres_restarted_during_the_load_loses_no_write_and_counts_nothing_twice(
    servers: Servers, own_postgres: OwnPostgres
) -> None:
    namespace = f"pg{uuid4().hex[:8]}."

    def settings(cls: type[S], database: str) -> S:
        return cls(
            environment="test",
            database_url=own_postgres.database_url(database),
            nats_url=servers.nats.url,
            events_namespace=namespace,
            relay_idle_seconds=0.05,
            database_pool_size=5,
        )

    services = Services(
        settings(RegistrySettings, "registry"),
        settings(LogbookSettings, "logbook"),
        settings(AnalyticsSettings, "analytics"),
        servers.nats.url,
    )
    await short_ack_wait(services.nats_url, namespace)
    async with loaded(services) as (load, writing, _):
        await asyncio.to_thread(own_postgres.restart)
        struck = load.ledger.answered
        await until_written(load.ledger, struck + 20, writing)

        await writing
        counted = await prove_nothing_lost(services, load.ledger)
    assert all(counted.values())
