"""What every rule needs: the caller, the repository, the outbox and the citizen-ID vault."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.registry.models import AuditEntry, Household
from services.registry.repository import RegistryRepository
from shared.auth import Caller
from shared.errors import ResourceNotFound
from shared.events import EventData
from shared.outbox import Outbox
from shared.pii import CitizenIdVault

SOURCE = "pinpoint/registry"


@dataclass
class Context:
    caller: Caller
    repo: RegistryRepository
    outbox: Outbox
    vault: CitizenIdVault
    access_reason: str | None = None

    def publish(self, data: EventData, *, subject: object, area_code: str) -> None:
        self.outbox.add(data, subject=str(subject), area_code=area_code)

    def audit(
        self,
        household: Household,
        *,
        entity: str,
        entity_id: UUID,
        action: str,
        changes: dict[str, Any],
    ) -> None:
        self.repo.add(
            AuditEntry(
                household_id=household.id,
                entity=entity,
                entity_id=entity_id,
                action=action,
                changes=changes,
                actor=self.caller.subject,
            )
        )

    def not_found(self, what: str, ident: object) -> ResourceNotFound:
        return ResourceNotFound(f"no {what} {ident}")
