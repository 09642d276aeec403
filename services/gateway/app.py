"""The gateway's app factory: the only public entrance to pinpoint.

It has no database and no NATS, so it is built from the shared pieces rather than with
`shared.app.build_service_app`, which opens both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware

from services.gateway.api import routers
from services.gateway.api.forward import install_forwarding
from services.gateway.api.oauth import Clients
from services.gateway.middleware import Gate, SecurityHeaders
from services.gateway.ratelimit import RateLimiter
from services.gateway.routing import UPLOAD_PATHS
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenVerifier, load_signing_key
from services.gateway.upstream import Upstream
from shared.app import BodySizeLimit
from shared.errors import install_error_handlers
from shared.health import ReadinessCheck, health_router
from shared.logging import install_request_id
from shared.metrics import install_metrics
from shared.tracing import configure_tracing, instrument_app

# What a browser on another origin may send, and read back, across CORS.
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Access-Reason",
    "X-Request-ID",
    "traceparent",
    "tracestate",
]
CORS_RESPONSE_HEADERS = ["ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"]


def _answers(upstream: Upstream) -> ReadinessCheck:
    async def check(request: Request) -> bool:
        return await upstream.alive()

    return check


def create_app(
    settings: GatewaySettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway as an ASGI app.

    `transports` reaches a service (by name: registry, logbook, analytics) or the OIDC issuer
    (`oidc`) some other way than its URL: tests route to in-process apps this way.
    """
    settings = settings or GatewaySettings()
    transports = transports or {}
    traced = configure_tracing(settings)  # before the upstream clients are instrumented
    upstreams = {
        name: Upstream(name, settings, transports.get(name)) for name in settings.service_urls()
    }
    signing_key = load_signing_key(settings.signing_key.get_secret_value())
    verifier = TokenVerifier(
        settings, signing_key.public_key(), oidc_transport=transports.get("oidc")
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for upstream in upstreams.values():
                await upstream.aclose()
            await verifier.aclose()

    app = FastAPI(
        title="pinpoint gateway",
        version="1.0.0",
        lifespan=lifespan,
        openapi_url=None,  # the public document is the services' merged one (api/docs.py)
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.signing_key = signing_key
    app.state.clients = Clients(settings.oauth_clients)
    install_error_handlers(app)
    # The last added middleware is the outermost: request ID, metrics, security headers and
    # CORS wrap every refusal; the gate refuses before a body is read; the body limit counts
    # the body as it streams on to the service.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        path_limits=dict.fromkeys(UPLOAD_PATHS, settings.max_import_bytes),
    )
    app.add_middleware(
        Gate,
        verifier=verifier,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts_max_age_seconds=settings.hsts_max_age_seconds)
    install_metrics(app, settings.service_name)
    install_request_id(app)
    app.include_router(health_router({name: _answers(u) for name, u in upstreams.items()}))
    for router in routers:
        app.include_router(router)
    install_forwarding(app, settings, upstreams)
    if traced:
        instrument_app(app)
    return app
