"""Migrations run once however many replicas start at the same moment."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE
from uuid import uuid4

import asyncpg

from services.analytics.migrations import SCRIPT_LOCATION as ANALYTICS_MIGRATIONS
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from tests.conftest import Servers

MIGRATE = (
    "import sys, pathlib; from shared.migrations import upgrade; "
    "upgrade(pathlib.Path(sys.argv[1]), sys.argv[2])"
)


async def test_replicas_migrating_at_once_leave_one_database_at_head(servers: Servers) -> None:
    for script_location in (REGISTRY_MIGRATIONS, LOGBOOK_MIGRATIONS, ANALYTICS_MIGRATIONS):
        name = f"migrate_{uuid4().hex[:12]}"
        url = servers.database_url(name)
        # Separate processes, as replicas are (alembic's context is one per process).
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", MIGRATE, str(script_location), url, stderr=PIPE
            )
            for _ in range(3)
        ]
        for run in runs:
            _, stderr = await run.communicate()
            assert run.returncode == 0, stderr.decode()
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            versions = await conn.fetch("SELECT version_num FROM alembic_version")
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
        finally:
            await conn.close()
        assert len(versions) == 1
        assert tables > 3
