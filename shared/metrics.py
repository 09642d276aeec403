"""Prometheus metrics every service exposes on `/metrics`."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "pinpoint_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "pinpoint_http_request_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("pinpoint_outbox_backlog", "Outbox events not yet published")
OUTBOX_PUBLISHED = Counter("pinpoint_outbox_published_total", "Outbox events confirmed by NATS")
DB_POOL_IN_USE = Gauge(
    "pinpoint_db_pool_connections_in_use", "Database connections checked out", ["service"]
)
DB_POOL_SIZE = Gauge(
    "pinpoint_db_pool_connections_open", "Database connections the pool holds open", ["service"]
)
DB_POOL_MAX = Gauge(
    "pinpoint_db_pool_connections_max", "Database connections the pool may open", ["service"]
)

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that served a request (`/v1/households/{household_id}`).

    Read from `scope["route"]`, which the router sets on the shared scope once it matched:
    walking `app.router.routes` is wrong since FastAPI 0.16x keeps included routers there
    as objects without a `path`. A path no route matched is one label, never the raw path.
    """
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class MetricsMiddleware:
    """Count and time every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the caller gets if the app raises before it answers

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
            REQUESTS.labels(self.service, method, route, str(status)).inc()


def install_metrics(app: FastAPI, service: str) -> None:
    """Measure every request and serve `/metrics`."""
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
