"""The hostile-input tests run against the gateway in front of all three services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from tests.gateway.conftest import gateway, make_gateway, registry_gateway
from tests.hostile.support import Ledger

__all__ = ["gateway", "ledger", "make_gateway", "registry_gateway"]


@pytest.fixture
async def ledger(
    registry_settings: RegistrySettings, logbook_settings: LogbookSettings
) -> AsyncIterator[Ledger]:
    """The registry's and the logbook's tables, to prove a refused request changed none."""
    opened = await Ledger.open(registry_settings, logbook_settings)
    yield opened
    await opened.close()
