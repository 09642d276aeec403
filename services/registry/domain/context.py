"""What every rule needs: the caller, the repository, the outbox and the citizen-ID vault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.orm.attributes import set_committed_value

from services.registry.models import AuditEntry, Household
from services.registry.repository import RegistryRepository
from shared.auth import Caller
from shared.errors import ResourceNotFound
from shared.events import Event, EventData, uuid7
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
    # Inside `bulk()`: the household changes, audit rows and events of many changes, written
    # together at its end.
    _changes: dict[UUID, dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _audits: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _events: list[Event] | None = field(default=None, init=False, repr=False)

    def change(self, household: Household, **values: Any) -> None:
        """Set these columns of a household, with its next version and the time of change:
        written by the session's flush, or inside `bulk()` with the others in one statement
        (the object shows the new values either way)."""
        values |= {"version": household.version + 1, "updated_at": datetime.now(UTC)}
        if self._changes is None:
            for name, value in values.items():
                setattr(household, name, value)
            return
        for name, value in values.items():
            set_committed_value(household, name, value)  # not left for the flush to write
        self._changes.setdefault(household.id, {"id": household.id}).update(values)

    def publish(self, data: EventData, *, subject: object, area_code: str) -> None:
        if self._events is None:
            self.outbox.add(data, subject=str(subject), area_code=area_code)
        else:
            self._events.append(self.outbox.event(data, subject=str(subject), area_code=area_code))

    def audit(
        self,
        household: Household,
        *,
        entity: str,
        entity_id: UUID,
        action: str,
        changes: dict[str, Any],
    ) -> None:
        values: dict[str, Any] = {
            "id": uuid7(),
            "household_id": household.id,
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "changes": changes,
            "actor": self.caller.subject,
        }
        if self._audits is None:
            self.repo.add(AuditEntry(**values))
        else:
            self._audits.append(values)

    @asynccontextmanager
    async def bulk(self) -> AsyncIterator[None]:
        """Many changes at once: inside, the households' changes, their audit rows and events
        are kept as plain values, and at the end written, one statement for each kind (an ORM
        object costs tens of microseconds to make, more than its share of a statement, and a
        flushed change is a statement of its own)."""
        assert self._audits is None, "one bulk block at a time"
        self._changes, self._audits, self._events = {}, [], []
        try:
            yield
            await self.repo.flush()
            await self.repo.update_rows(Household, list(self._changes.values()))
            await self.repo.insert_rows(AuditEntry, self._audits)
            await self.outbox.add_many(self._events)
        finally:
            self._changes = self._audits = self._events = None

    def not_found(self, what: str, ident: object) -> ResourceNotFound:
        return ResourceNotFound(f"no {what} {ident}")
