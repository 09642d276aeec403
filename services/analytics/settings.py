"""The analytics service's settings."""

from __future__ import annotations

from shared.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    service_name: str = "analytics"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/analytics"
    # Analytics publishes nothing: it only consumes.
    relay_enabled: bool = False
