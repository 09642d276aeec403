"""The demo province, end to end: the registry's households set-wise, then a logbook history
written through the services' own rules while the services run (so every event flows)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services.logbook import demo as logbook_demo
from services.logbook.settings import LogbookSettings
from services.registry import demo as registry_demo
from services.registry.settings import RegistrySettings
from shared.db import create_engine, create_sessionmaker
from shared.pii import CitizenIdVault
from shared.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def settings_from(cls: type[S], env: dict[str, str]) -> S:
    """A service's settings from the `PINPOINT_*` variables `pinpoint up` gives that service;
    the process's own `PINPOINT_*` variables fill in the rest."""
    values: dict[str, Any] = {
        k.removeprefix("PINPOINT_").lower(): v for k, v in env.items() if k.startswith("PINPOINT_")
    }
    return cls(**values)


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within:.0f}s; are the services up?")
        await asyncio.sleep(0.5)


async def load_registry(env: dict[str, str], *, households: int = registry_demo.HOUSEHOLDS) -> int:
    """The province's centres, teams and households (0 if the demo is there already)."""
    settings = settings_from(RegistrySettings, env)
    engine = create_engine(settings)
    try:
        vault = CitizenIdVault(
            settings.pii_key.get_secret_value(), settings.blind_index_key.get_secret_value()
        )
        return await registry_demo.load_demo(
            create_sessionmaker(engine),
            vault,
            namespace=settings.events_namespace,
            households=households,
        )
    finally:
        await engine.dispose()


async def load_history(
    registry_env: dict[str, str], logbook_env: dict[str, str], *, within: float = 300
) -> dict[str, Any]:
    """Visits, interventions and graduations for the demo households (empty if present)."""
    registry = settings_from(RegistrySettings, registry_env)
    logbook = settings_from(LogbookSettings, logbook_env)
    registry_engine, logbook_engine = create_engine(registry), create_engine(logbook)
    try:
        registry_db = create_sessionmaker(registry_engine)
        logbook_db = create_sessionmaker(logbook_engine)
        if await logbook_demo.has_history(logbook_db):
            return {}
        households = await registry_demo.demo_households(registry_db)
        ids = [h[0] for h in households]

        async def logbook_knows_them() -> bool:
            return await logbook_demo.known_households(logbook_db, ids) == len(ids)

        await _until(logbook_knows_them, "the logbook hearing of every household", within)
        written, ready = await logbook_demo.load_history(logbook_db, logbook, households)

        async def registry_saw_visits() -> bool:
            return await registry_demo.count_in_status(registry_db, ready, "in_progress") == len(
                ready
            )

        await _until(registry_saw_visits, "the registry hearing of the visits", within)
        vault = CitizenIdVault(
            registry.pii_key.get_secret_value(), registry.blind_index_key.get_secret_value()
        )
        graduated = await registry_demo.graduate(
            registry_db, vault, ready, namespace=registry.events_namespace
        )
        return {**written, "graduated": graduated}
    finally:
        await registry_engine.dispose()
        await logbook_engine.dispose()
