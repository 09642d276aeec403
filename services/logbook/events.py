"""What the logbook consumes: registry events that keep its read model of households current.

Each handler is small and idempotent in effect (upserts keyed by id), and runs inside the
consumer's transaction together with the record of the event's id.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.repository import LogbookRepository
from shared.consumer import Handler
from shared.events import Event
from shared.events.registry import (
    HouseholdAssigned,
    HouseholdRegistered,
    HouseholdStatusChanged,
    HouseholdUpdated,
    OrganizationChanged,
    OrganizationCreated,
    PersonAdded,
)

DURABLE = "logbook-households"


class NotKnownYet(LookupError):
    """An event about a household whose registration is not applied yet. Replicas share the
    stream, so a household's assignment can reach one of them before its registration reaches
    the other: raised, the event is tried again a moment later (and dead-lettered if the
    registration never comes), never applied to nothing."""


async def _update(repo: LogbookRepository, household_id: UUID, **values: Any) -> None:
    if not await repo.update_household(household_id, **values):
        raise NotKnownYet(f"household {household_id} is not registered here yet")


async def on_household_registered(session: AsyncSession, event: Event) -> None:
    data = HouseholdRegistered.model_validate(event.data)
    repo = LogbookRepository(session)
    await repo.insert_household(
        {
            "id": data.household_id,
            "area_code": data.area_code,
            "mentor_team_id": data.mentor_team_id,
            "status": data.status,
        }
    )
    await repo.add_household_status(
        {
            "event_id": event.id,
            "household_id": data.household_id,
            "from_status": None,
            "to_status": data.status,
            "reason": "registered",
            "changed_by": event.source,
            "changed_at": event.time,
        }
    )


async def on_household_updated(session: AsyncSession, event: Event) -> None:
    data = HouseholdUpdated.model_validate(event.data)
    await _update(LogbookRepository(session), data.household_id, area_code=data.area_code)


async def on_household_assigned(session: AsyncSession, event: Event) -> None:
    data = HouseholdAssigned.model_validate(event.data)
    await _update(LogbookRepository(session), data.household_id, mentor_team_id=data.mentor_team_id)


async def on_household_status_changed(session: AsyncSession, event: Event) -> None:
    data = HouseholdStatusChanged.model_validate(event.data)
    repo = LogbookRepository(session)
    await _update(repo, data.household_id, status=data.to_status)
    await repo.add_household_status(
        {
            "event_id": event.id,
            "household_id": data.household_id,
            "from_status": data.from_status,
            "to_status": data.to_status,
            "reason": data.reason,
            "changed_by": data.changed_by,
            "changed_at": event.time,
        }
    )


async def on_person_added(session: AsyncSession, event: Event) -> None:
    data = PersonAdded.model_validate(event.data)
    await LogbookRepository(session).upsert_person(data.person_id, data.household_id)


async def on_organization(session: AsyncSession, event: Event) -> None:
    data = (
        OrganizationCreated if event.type == OrganizationCreated.type else OrganizationChanged
    ).model_validate(event.data)
    await LogbookRepository(session).upsert_organization(
        {
            "id": data.organization_id,
            "kind": data.kind,
            "name": data.name,
            "area_code": data.area_code,
        }
    )


HANDLERS: dict[str, Handler] = {
    HouseholdRegistered.type: on_household_registered,
    HouseholdUpdated.type: on_household_updated,
    HouseholdAssigned.type: on_household_assigned,
    HouseholdStatusChanged.type: on_household_status_changed,
    PersonAdded.type: on_person_added,
    OrganizationCreated.type: on_organization,
    OrganizationChanged.type: on_organization,
}
