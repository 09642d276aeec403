"""The services this build has, and how to reach each one's app, migrations and settings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    package: str
    default_port: int
    database: str | None

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{self.package}.{name}")

    @property
    def create_app(self) -> Callable[..., FastAPI]:
        return self.module("app").create_app  # type: ignore[no-any-return]

    @property
    def settings_class(self) -> type[ServiceSettings]:
        settings = self.module("settings")
        return next(
            v
            for k, v in vars(settings).items()
            if k.endswith("Settings")
            and isinstance(v, type)
            and issubclass(v, ServiceSettings)
            and v.__module__ == settings.__name__
        )

    @property
    def migrations(self) -> Path | None:
        if self.database is None:
            return None
        return self.module("migrations").SCRIPT_LOCATION  # type: ignore[no-any-return]


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("registry", "services.registry", 8101, "registry"),
        ServiceSpec("logbook", "services.logbook", 8102, "logbook"),
        ServiceSpec("analytics", "services.analytics", 8103, "analytics"),
        ServiceSpec("gateway", "services.gateway", 8100, None),
    )
}
