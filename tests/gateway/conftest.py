"""The gateway in front of the test's own services, reached in process; tokens for any caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from pinpoint.devservers import free_port
from services.gateway.app import create_app
from services.gateway.settings import DEV_SIGNING_KEY, GatewaySettings
from services.gateway.tokens import load_signing_key, sign_token
from shared.auth import Caller, Role
from tests.conftest import running

GATEWAY_URL = "http://gateway"


def token(
    role: Role | str,
    area: str,
    team_id: UUID | str | None = None,
    subject: str | None = None,
    *,
    ttl_seconds: int = 600,
    **overrides: Any,
) -> str:
    """A token the test gateway accepts (signed with the development key)."""
    caller = Caller(
        subject=subject or f"{role}@{area}",
        role=Role(role),
        area=area,
        team_id=UUID(str(team_id)) if team_id else None,
    )
    settings = GatewaySettings(environment="test")
    return sign_token(
        load_signing_key(DEV_SIGNING_KEY),
        caller,
        issuer=overrides.pop("issuer", settings.issuer),
        audience=overrides.pop("audience", settings.audience),
        ttl_seconds=ttl_seconds,
        **overrides,
    )


@dataclass
class Gateway:
    """A running gateway and clients of it: anonymous, or as a caller with a bearer token."""

    app: FastAPI
    settings: GatewaySettings
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=GATEWAY_URL, headers=headers
        )
        self._clients.append(client)
        return client

    def as_(
        self,
        role: Role | str,
        area: str,
        team_id: UUID | str | None = None,
        subject: str | None = None,
    ) -> httpx.AsyncClient:
        return self.client({"Authorization": f"Bearer {token(role, area, team_id, subject)}"})

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Start gateways with these transports (by service) and settings; all stop at the end.

    A service without a transport is at a port where nothing listens. No client is limited
    unless the settings say so: a test sends requests one after another as fast as the
    machine goes, and on a fast one that outran the default rate (a 429 where the test looked
    for its answer). The limiter's own tests give theirs.
    """
    async with AsyncExitStack() as stack:

        async def make(transports: dict[str, httpx.AsyncBaseTransport], **extra: Any) -> Gateway:
            nowhere = f"http://127.0.0.1:{free_port()}"
            urls = {f"{name}_url": nowhere for name in ("registry", "logbook", "analytics")}
            unlimited = {"rate_limit_per_second": 1e9, "rate_limit_burst": 10**9}
            settings = GatewaySettings(environment="test", **{**urls, **unlimited, **extra})
            app = await stack.enter_async_context(
                running(create_app(settings, transports=transports))
            )
            gateway = Gateway(app, settings)
            stack.push_async_callback(gateway.aclose)
            return gateway

        yield make


@pytest.fixture
async def registry_gateway(make_gateway: GatewayFactory, registry_app: FastAPI) -> Gateway:
    """The gateway with the registry behind it (the other services down)."""
    return await make_gateway({"registry": httpx.ASGITransport(app=registry_app)})


@pytest.fixture
async def gateway(
    make_gateway: GatewayFactory,
    registry_app: FastAPI,
    logbook_app: FastAPI,
    analytics_app: FastAPI,
) -> Gateway:
    """The gateway in front of all three services, which share the test's event streams."""
    return await make_gateway(
        {
            "registry": httpx.ASGITransport(app=registry_app),
            "logbook": httpx.ASGITransport(app=logbook_app),
            "analytics": httpx.ASGITransport(app=analytics_app),
        }
    )
