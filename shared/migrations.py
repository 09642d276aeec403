"""Alembic, run from code: one migration history per service, in that service's database."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATION_LOCK = 0x6D696772  # "migr"


def alembic_config(script_location: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def ensure_database(database_url: str) -> None:
    """Create the service's database on its server if it does not exist yet."""
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
        if not exists:
            # Another replica may create it between our look and this.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await conn.close()


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Bring a service's database to `revision` (blocking; call from a thread in async code)."""
    asyncio.run(ensure_database(database_url))
    command.upgrade(alembic_config(script_location, database_url), revision)


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's `migrations/env.py` (online mode, async engine)."""

    def do_run(connection: Connection) -> None:
        # Replicas that start at once migrate one after the other: the second finds the
        # database at head and does nothing. (A session lock outlives the commits below.)
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            connection.commit()

    async def run_async() -> None:
        url = context.config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
