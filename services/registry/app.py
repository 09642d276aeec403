"""The registry's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.registry import events
from services.registry.api import routers
from services.registry.api.imports import HOUSEHOLDS_PATH
from services.registry.api.persons import LOOKUP_PATH
from services.registry.imports.jobs import Importer
from services.registry.settings import RegistrySettings
from shared.app import build_service_app
from shared.consumer import Consumer, consuming
from shared.pii import CitizenIdVault


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """The registry as an ASGI app: areas, organizations, households and persons."""
    settings = settings or RegistrySettings()
    vault = CitizenIdVault(
        settings.pii_key.get_secret_value(), settings.blind_index_key.get_secret_value()
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        consumer = Consumer(
            app.state.bus,
            app.state.sessionmaker,
            stream="LOGBOOK",
            durable=events.DURABLE,
            handlers=events.HANDLERS,
            before_commit=events.move_on(vault, settings.events_namespace),
            batch_size=events.BATCH_SIZE,
        )
        app.state.consumer = consumer
        importer = Importer(
            app.state.engine,
            vault,
            namespace=settings.events_namespace,
            on_moved_in=app.state.relay.wake,
        )
        app.state.importer = importer
        try:
            async with consuming(app, [consumer] if settings.consumer_enabled else []):
                yield
        finally:
            await importer.close()

    app = build_service_app(
        settings,
        title="pinpoint registry",
        description="Areas, organizations, target households and their members.",
        routers=routers,
        extra_lifespan=lifespan,
        streamed_bodies={HOUSEHOLDS_PATH: settings.max_import_bytes},
        post_reads=[LOOKUP_PATH],
        answer_seal=vault,  # its answers show citizen IDs
    )
    app.state.vault = vault
    return app
