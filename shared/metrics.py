"""Prometheus metrics every service exposes on `/metrics`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

REQUESTS = Counter(
    "pinpoint_http_requests_total", "HTTP requests answered",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "pinpoint_http_request_seconds", "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("pinpoint_outbox_backlog", "Outbox events not yet published")
OUTBOX_PUBLISHED = Counter("pinpoint_outbox_published_total", "Outbox events confirmed by NATS")


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


def install_metrics(app: FastAPI, service: str) -> None:
    """Count and time every request by route template, and serve `/metrics`."""

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        LATENCY.labels(service, request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
