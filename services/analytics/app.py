"""The analytics service's app factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.analytics import events
from services.analytics.api import routers
from services.analytics.settings import AnalyticsSettings
from shared.app import build_service_app
from shared.consumer import Consumer, consuming


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    """Analytics as an ASGI app: progress by area, projected from the event streams."""
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        consumers = [
            Consumer(
                app.state.bus,
                app.state.sessionmaker,
                stream="REGISTRY",
                durable=events.REGISTRY_DURABLE,
                handlers=events.REGISTRY_HANDLERS,
                on_begin=events.begin_live_batch,
                before_commit=events.write_batch,
                batch_size=events.BATCH_SIZE,
            ),
            Consumer(
                app.state.bus,
                app.state.sessionmaker,
                stream="LOGBOOK",
                durable=events.LOGBOOK_DURABLE,
                handlers=events.LOGBOOK_HANDLERS,
                on_begin=events.begin_live_batch,
                before_commit=events.write_batch,
                batch_size=events.BATCH_SIZE,
            ),
        ]
        # What start-up made lives as long as the app: out of the collector's sight, its full
        # collections no longer walk it while events pour in (about a sixth of the consumers'
        # CPU went to the collector before).
        gc.freeze()
        try:
            async with consuming(app, consumers if settings.consumer_enabled else []):
                yield
        finally:
            gc.unfreeze()

    return build_service_app(
        settings,
        title="pinpoint analytics",
        description="Progress by province, district and sub-district, from the event streams.",
        routers=routers,
        extra_lifespan=lifespan,
    )
