"""Every public route of the services: each family of paths forwarded to the service owning it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.middleware import caller_of
from services.gateway.routing import FAMILIES
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import Upstream, forward, timeout_for, upstream_headers

# Every method goes on: what a service does not serve, it answers 405 itself.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def install_forwarding(
    app: FastAPI, settings: GatewaySettings, upstreams: dict[str, Upstream]
) -> None:
    """Add one route per family; it takes the raw request, whose body is the service's to read."""
    for family in FAMILIES:
        endpoint = _endpoint(
            settings, upstreams[family.service], timeout_for(settings, upload=family.upload)
        )
        app.add_api_route(family.path, endpoint, methods=METHODS, include_in_schema=False)


def _endpoint(
    settings: GatewaySettings, upstream: Upstream, timeout: httpx.Timeout
) -> Callable[[Request], Awaitable[Response]]:
    internal_key = settings.internal_key.get_secret_value()
    ttl = settings.internal_token_ttl_seconds

    async def endpoint(request: Request) -> Response:
        headers = upstream_headers(request, caller_of(request), internal_key, ttl)
        return await forward(request, upstream, headers, timeout)

    return endpoint
