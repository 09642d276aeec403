"""The registry's app factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.api import routers
from services.registry.settings import RegistrySettings
from shared.app import build_service_app
from shared.pii import CitizenIdVault


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """The registry as an ASGI app: areas, organizations, households and persons."""
    settings = settings or RegistrySettings()
    app = build_service_app(
        settings,
        title="pinpoint registry",
        description="Areas, organizations, target households and their members.",
        routers=routers,
    )
    app.state.vault = CitizenIdVault(settings.pii_key.get_secret_value(),
                                     settings.blind_index_key.get_secret_value())
    return app
