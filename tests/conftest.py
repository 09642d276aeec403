"""One real PostgreSQL and one real NATS per test session; a database and a namespace per test."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from pinpoint.devservers import LocalNats, LocalPostgres, free_port
from services.analytics.app import create_app as create_analytics
from services.analytics.migrations import SCRIPT_LOCATION as ANALYTICS_MIGRATIONS
from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as create_logbook
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY, ServiceSettings


@dataclass
class Servers:
    postgres: LocalPostgres
    nats: LocalNats

    def database_url(self, name: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.postgres.port}/{name}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.postgres.port}/postgres"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    root = Path(tempfile.mkdtemp(prefix="pinpoint-test-"))
    postgres = LocalPostgres(root / "pg", port=free_port(), durable=False)
    nats = LocalNats(root / "nats" / "store", port=free_port())
    postgres.start()
    nats.start()
    try:
        yield Servers(postgres, nats)
    finally:
        nats.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)  # a test session's servers leave nothing behind


@pytest.fixture(scope="session")
async def registry_template(servers: Servers) -> str:
    """A migrated registry database that each test copies (much faster than migrating)."""
    return await migrated(servers, "registry_template", REGISTRY_MIGRATIONS)


async def migrated(servers: Servers, name: str, script_location: Path) -> str:
    await asyncio.to_thread(upgrade, script_location, servers.database_url(name))
    return name


S = TypeVar("S", bound=ServiceSettings)


def settings_for(cls: type[S], servers: Servers, database: str, namespace: str, **extra: Any) -> S:
    """A service's settings for one test: its own database, the test's stream namespace."""
    return cls(
        environment="test",
        database_url=servers.database_url(database),
        nats_url=servers.nats.url,
        events_namespace=namespace,
        relay_idle_seconds=0.05,
        database_pool_size=5,
        **extra,
    )


@asynccontextmanager
async def fresh_database(servers: Servers, template: str) -> AsyncIterator[str]:
    name = f"t_{uuid4().hex[:16]}"
    admin = await asyncpg.connect(servers.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(servers.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def registry_settings(
    servers: Servers, registry_template: str
) -> AsyncIterator[RegistrySettings]:
    async with fresh_database(servers, registry_template) as name:
        yield settings_for(RegistrySettings, servers, name, f"{name}.")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run an app's lifespan (engine, NATS, outbox relay) around a block."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def registry_app(registry_settings: RegistrySettings) -> AsyncIterator[FastAPI]:
    async with running(create_app(registry_settings)) as app:
        yield app


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def caller_clients() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients for any app that call it as a given role, area and team, as the gateway would."""
    clients: list[httpx.AsyncClient] = []

    def make(
        app: FastAPI,
        role: Role | str = Role.national_admin,
        area: str = "TH",
        team_id: UUID | None = None,
        subject: str | None = None,
    ) -> httpx.AsyncClient:
        caller = Caller(
            subject=subject or f"{role}@{area}", role=Role(role), area=area, team_id=team_id
        )
        token = mint_internal_token(caller, DEV_INTERNAL_KEY)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pinpoint",
            headers={IDENTITY_HEADER: token},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def as_caller(
    registry_app: FastAPI, caller_clients: Callable[..., httpx.AsyncClient]
) -> ClientFactory:
    """Clients that call the registry (or `app=`) as a given role, area and team."""

    def make(
        role: Role | str = Role.national_admin,
        area: str = "TH",
        team_id: UUID | None = None,
        subject: str | None = None,
        app: FastAPI | None = None,
    ) -> httpx.AsyncClient:
        return caller_clients(app or registry_app, role, area, team_id, subject)

    return make


@pytest.fixture
async def admin(as_caller: ClientFactory) -> httpx.AsyncClient:
    return as_caller(Role.national_admin, "TH")


async def db_rows(settings: ServiceSettings, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Read a service's database directly (to prove what was, or was not, written)."""
    return await rows_at(settings.database_url, sql, *args)


async def rows_at(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Read a database directly, given its SQLAlchemy URL."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


registry_rows = db_rows


@pytest.fixture(scope="session")
async def logbook_template(servers: Servers) -> str:
    """A migrated logbook database that each test copies (much faster than migrating)."""
    return await migrated(servers, "logbook_template", LOGBOOK_MIGRATIONS)


@pytest.fixture
async def logbook_settings(
    servers: Servers, logbook_template: str, registry_settings: RegistrySettings
) -> AsyncIterator[LogbookSettings]:
    """The logbook beside the test's registry, on the same streams."""
    async with fresh_database(servers, logbook_template) as name:
        yield settings_for(
            LogbookSettings,
            servers,
            name,
            registry_settings.events_namespace,
            registry_url="http://registry",
        )


@pytest.fixture
async def logbook_app(
    logbook_settings: LogbookSettings, registry_app: FastAPI
) -> AsyncIterator[FastAPI]:
    app = create_logbook(logbook_settings, registry_transport=httpx.ASGITransport(app=registry_app))
    async with running(app) as started:
        yield started


@pytest.fixture
async def logbook_as(as_caller: ClientFactory, logbook_app: FastAPI) -> ClientFactory:
    """Clients that call the logbook as a given role, area and team."""

    def make(
        role: Role | str = Role.national_admin,
        area: str = "TH",
        team_id: UUID | None = None,
        subject: str | None = None,
    ) -> httpx.AsyncClient:
        return as_caller(role, area, team_id, subject, app=logbook_app)

    return make


async def eventually(
    check: Callable[[], Any], *, within: float = 15.0, what: str = "the condition"
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, failing after `within`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def analytics_template(servers: Servers) -> str:
    """A migrated analytics database that each test copies (much faster than migrating)."""
    return await migrated(servers, "analytics_template", ANALYTICS_MIGRATIONS)


@pytest.fixture
async def analytics_settings(
    servers: Servers, analytics_template: str, registry_settings: RegistrySettings
) -> AsyncIterator[AnalyticsSettings]:
    """Analytics beside the test's registry and logbook, on the same streams."""
    async with fresh_database(servers, analytics_template) as name:
        yield settings_for(AnalyticsSettings, servers, name, registry_settings.events_namespace)


@pytest.fixture
async def analytics_app(analytics_settings: AnalyticsSettings) -> AsyncIterator[FastAPI]:
    async with running(create_analytics(analytics_settings)) as app:
        yield app
