"""Every public route of the services: each family of paths forwarded to the service owning it."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.middleware import caller_of
from services.gateway.routing import FAMILIES
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import (
    InternalTokens,
    Upstream,
    forward,
    timeout_for,
    upstream_headers,
)
from shared.errors import ResourceNotFound

DOT_SEGMENTS = frozenset({".", ".."})
# Every method goes on: what a service does not serve, it answers 405 itself.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def install_forwarding(
    app: FastAPI, settings: GatewaySettings, upstreams: dict[str, Upstream]
) -> None:
    """Add one route per family; it takes the raw request, whose body is the service's to read.

    Plain Starlette routes: FastAPI's parameter and dependency machinery has nothing to do for
    a request passed on whole, and costs a fifth of the gateway's time per request.
    """
    tokens = InternalTokens(
        settings.internal_key.get_secret_value(), settings.internal_token_ttl_seconds
    )
    forwarding = [
        _route(
            family.path,
            tokens,
            upstreams[family.service],
            timeout_for(settings, upload=family.upload),
        )
        for family in FAMILIES
    ]
    # First in the table: nearly every request is one of them, and none of the gateway's own
    # paths (probes, metrics, the document, the token endpoint) falls under a family.
    app.router.routes[0:0] = forwarding


def _route(path: str, tokens: InternalTokens, upstream: Upstream, timeout: httpx.Timeout) -> Route:
    async def endpoint(request: Request) -> Response:
        # As FastAPI's routes do, name the route in the scope: the metrics count by its path.
        request.scope["route"] = route
        if DOT_SEGMENTS.intersection(request.scope["path"].split("/")):
            # The client on the far side would resolve `/v1/x/../../internal` to a route that
            # is not public: a path is forwarded as matched, or not at all.
            raise ResourceNotFound(f"no route {request.scope['path']}")
        headers = upstream_headers(request.scope, tokens.identity(caller_of(request)))
        return await forward(request, upstream, headers, timeout)

    route = Route(path, endpoint, methods=METHODS)
    return route
