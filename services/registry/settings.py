"""The registry's settings."""

from __future__ import annotations

from shared.settings import PiiSettings


class RegistrySettings(PiiSettings):
    service_name: str = "registry"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/registry"
