"""The logbook's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.logbook.api import routers
from services.logbook.api.imports import LOGBOOK_IMPORT_PATH
from services.logbook.events import BATCH_SIZE, DURABLE, HANDLERS, load_batch, write_batch
from services.logbook.imports.jobs import Importer
from services.logbook.registry_client import RegistryClient
from services.logbook.settings import LogbookSettings
from shared.app import build_service_app
from shared.consumer import Consumer, consuming


def create_app(
    settings: LogbookSettings | None = None,
    *,
    registry_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The logbook as an ASGI app: menus, visits, interventions, worklists and timelines.

    `registry_transport` reaches the registry some other way than its URL (tests use ASGI).
    """
    settings = settings or LogbookSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = RegistryClient(
            settings.registry_url,
            settings.internal_key.get_secret_value(),
            timeout=settings.registry_timeout_seconds,
            transport=registry_transport,
        )
        app.state.registry = registry
        consumer = Consumer(
            app.state.bus,
            app.state.sessionmaker,
            stream="REGISTRY",
            durable=DURABLE,
            handlers=HANDLERS,
            on_begin=load_batch,
            before_commit=write_batch,
            batch_size=BATCH_SIZE,
        )
        app.state.consumer = consumer
        importer = Importer(
            app.state.engine,
            namespace=settings.events_namespace,
            follow_up_days=settings.follow_up_days_without_problems,
            on_moved_in=app.state.relay.wake,
        )
        app.state.history_importer = importer
        try:
            async with consuming(app, [consumer] if settings.consumer_enabled else []):
                yield
        finally:
            await importer.close()
            await registry.aclose()

    return build_service_app(
        settings,
        title="pinpoint logbook",
        description="Visits, plans and every intervention given to a household.",
        routers=routers,
        extra_lifespan=lifespan,
        streamed_bodies={LOGBOOK_IMPORT_PATH: settings.max_import_bytes},
    )
