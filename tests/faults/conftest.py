"""Servers of a test's own, which it may kill and start again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinpoint.devservers import LocalNats, LocalPostgres, free_port
from services.analytics.migrations import SCRIPT_LOCATION as ANALYTICS_MIGRATIONS
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from shared.migrations import upgrade


@pytest.fixture
async def dedicated_nats(tmp_path: Path) -> AsyncIterator[LocalNats]:
    """A NATS server of the test's own, started; stopped at the end whatever happened."""
    server = LocalNats(tmp_path / "nats" / "store", port=free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class OwnPostgres:
    """A PostgreSQL server of the test's own with the three services' databases migrated."""

    server: LocalPostgres

    def database_url(self, name: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.server.port}/{name}"

    def restart(self) -> None:
        """Stop it at once (`immediate`: no checkpoint, connections cut, crash recovery at the
        next start), then start it again on the same port and data."""
        self.server._run("pg_ctl", "-D", str(self.server.data_dir), "-m", "immediate", "-w", "stop")
        self.server.start()


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[OwnPostgres]:
    """Durable, as in production: the session's server runs with `synchronous_commit=off`,
    which answers a commit before its WAL is written, and so loses it in a crash."""
    server = LocalPostgres(tmp_path / "pg", port=free_port(), durable=True)
    await asyncio.to_thread(server.start)
    own = OwnPostgres(server)
    try:
        for name, migrations in (
            ("registry", REGISTRY_MIGRATIONS),
            ("logbook", LOGBOOK_MIGRATIONS),
            ("analytics", ANALYTICS_MIGRATIONS),
        ):
            await asyncio.to_thread(upgrade, migrations, own.database_url(name))
        yield own
    finally:
        await asyncio.to_thread(server.stop)
