"""What every rule needs: the caller, the repository, the outbox and the registry client."""

from __future__ import annotations

from dataclasses import dataclass

from services.logbook.registry_client import RegistryClient
from services.logbook.repository import LogbookRepository
from services.logbook.settings import LogbookSettings
from shared.auth import Caller
from shared.events import EventData
from shared.outbox import Outbox

SOURCE = "pinpoint/logbook"


@dataclass
class Context:
    caller: Caller
    repo: LogbookRepository
    outbox: Outbox
    registry: RegistryClient
    settings: LogbookSettings

    def publish(self, data: EventData, *, subject: object, area_code: str) -> None:
        self.outbox.add(data, subject=str(subject), area_code=area_code)
