"""What every service's app factory shares: lifespan resources, middleware, errors, health."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.bus import Bus
from shared.consumer import consumers_ready
from shared.db import create_engine, create_sessionmaker, database_ready
from shared.errors import PayloadTooLarge, install_error_handlers, problem_response
from shared.health import ReadinessCheck, health_router
from shared.idempotency import AnswerSeal, IdempotencyMiddleware, forget_expired_every
from shared.logging import install_request_id
from shared.metrics import DB_POOL_IN_USE, DB_POOL_MAX, DB_POOL_SIZE, install_metrics
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class _BodyTooLarge(StarletteHTTPException):
    """Raised while reading the body; FastAPI lets HTTP exceptions through to our handler."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(PayloadTooLarge.status, f"the body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """Refuse a request body over the limit with 413, whether or not it declares its length.

    The refusal happens when the body is read, so the request has been routed by then and
    its answer is an ordinary problem document (with request ID, counted by route).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > max_bytes
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            if too_large:
                raise _BodyTooLarge(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _BodyTooLarge(max_bytes)
            return message

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, send_and_note)
        except _BodyTooLarge as exc:
            # The body was read outside the routes' exception handling (by a middleware).
            if started:
                raise
            response = problem_response(
                Request(scope),
                status=exc.status_code,
                slug=PayloadTooLarge.slug,
                title=PayloadTooLarge.title,
                detail=exc.detail,
            )
            await response(scope, receive, send)


def operation_id(route: APIRoute) -> str:
    """The route function's name in camelCase (`list_households` → `listHouseholds`).

    FastAPI's default (`list_households_v1_households_get`) changes with the path and leaks
    into every generated client; the function name is stable and reads as a verb.
    """
    head, *rest = route.name.split("_")
    return head + "".join(word.capitalize() for word in rest)


@asynccontextmanager
async def service_resources(app: FastAPI, settings: ServiceSettings) -> AsyncIterator[None]:
    """Open the engine, the NATS connection, the outbox relay and the forgetting of old
    idempotency keys; close them in order."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    pool: Any = engine.sync_engine.pool
    DB_POOL_IN_USE.labels(settings.service_name).set_function(pool.checkedout)
    DB_POOL_SIZE.labels(settings.service_name).set_function(
        lambda: pool.checkedin() + pool.checkedout()
    )
    DB_POOL_MAX.labels(settings.service_name).set(2 * settings.database_pool_size)
    bus = Bus(
        settings.nats_url,
        name=settings.service_name,
        namespace=settings.events_namespace,
        connect_timeout=settings.nats_connect_timeout_seconds,
        stream_replicas=settings.stream_replicas,
    )
    app.state.engine, app.state.sessionmaker, app.state.bus = engine, sessionmaker, bus
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    relay = OutboxRelay(
        sessionmaker,
        bus,
        batch_size=settings.relay_batch_size,
        idle_seconds=settings.relay_idle_seconds,
        retention=timedelta(hours=settings.outbox_retention_hours),
    )
    app.state.relay = relay
    if settings.relay_enabled:
        tasks.append(asyncio.create_task(relay.run(stop), name="outbox-relay"))
    tasks.append(asyncio.create_task(forget_expired_every(sessionmaker, stop), name="forget-keys"))
    try:
        yield
    finally:
        stop.set()
        relay.wake()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await bus.close()
        await engine.dispose()


async def _database_ready(request: Request) -> bool:
    return await database_ready(request.app.state.engine)


async def _nats_ready(request: Request) -> bool:
    bus: Bus = request.app.state.bus
    return await bus.ready()


def build_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    extra_lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    streamed_bodies: dict[str, int] | None = None,
    post_reads: Sequence[str] = (),
    answer_seal: AnswerSeal | None = None,
) -> FastAPI:
    """A FastAPI app with pinpoint's conventions: problem+json, request IDs, metrics, health,
    and a server span per request while tracing (`shared/tracing.py`).

    `streamed_bodies` names the paths whose routes stream their request body (bulk uploads),
    each with its own size limit; the idempotency middleware never buffers those bodies.
    `post_reads` names the POST paths that only read (each runs again on a repeated
    `Idempotency-Key`); `answer_seal` encrypts the answers kept for replays.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, settings):
            if extra_lifespan is None:
                yield
            else:
                async with extra_lifespan(app):
                    yield

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # The last added middleware is the outermost: request ID, metrics, body limit, then
    # idempotency (inside the limit, since it reads the body).
    streamed = streamed_bodies or {}
    app.add_middleware(
        IdempotencyMiddleware,
        unbuffered_paths=frozenset(streamed),
        reads=frozenset(post_reads),
        seal=answer_seal,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, path_limits=streamed)
    install_metrics(app, settings.service_name)
    install_request_id(app)
    app.include_router(
        health_router(
            {
                "database": _database_ready,
                "nats": _nats_ready,
                "consumers": consumers_ready,
                **(readiness or {}),
            }
        )
    )
    for router in routers:
        app.include_router(router)
    if tracing.configure_tracing(settings):
        tracing.instrument_app(app)
    return app
