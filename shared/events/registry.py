"""Events the registry publishes on the REGISTRY stream. They carry no names or citizen IDs."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from shared.events import EventData


class HouseholdRegistered(EventData):
    type = "registry.household.registered"

    household_id: UUID
    area_code: str
    house_code: str | None
    status: str
    survey_year: int | None
    failed_indicators: list[str]
    dimensions: list[str]
    mentor_team_id: UUID | None
    member_count: int


class HouseholdUpdated(EventData):
    type = "registry.household.updated"

    household_id: UUID
    area_code: str
    previous_area_code: str
    changed: list[str]
    failed_indicators: list[str]
    dimensions: list[str]


class HouseholdStatusChanged(EventData):
    type = "registry.household.status_changed"

    household_id: UUID
    area_code: str
    from_status: str
    to_status: str
    reason: str | None
    changed_by: str


class HouseholdAssigned(EventData):
    type = "registry.household.assigned"

    household_id: UUID
    area_code: str
    mentor_team_id: UUID | None
    previous_team_id: UUID | None


class PersonAdded(EventData):
    type = "registry.person.added"

    person_id: UUID
    household_id: UUID
    area_code: str
    sex: str | None
    birth_date: date | None
    life_stage: str | None
    disability: bool
    welfare_card: bool


class PersonChanged(EventData):
    type = "registry.person.changed"

    person_id: UUID
    household_id: UUID
    area_code: str
    changed: list[str]
    life_stage: str | None
    disability: bool
    welfare_card: bool


class OrganizationCreated(EventData):
    type = "registry.organization.created"

    organization_id: UUID
    kind: str
    name: str
    area_code: str
    parent_id: UUID | None


class OrganizationChanged(EventData):
    type = "registry.organization.changed"

    organization_id: UUID
    kind: str
    name: str
    area_code: str
    parent_id: UUID | None
    changed: list[str]


REGISTRY_EVENTS: tuple[type[EventData], ...] = (
    HouseholdRegistered,
    HouseholdUpdated,
    HouseholdStatusChanged,
    HouseholdAssigned,
    PersonAdded,
    PersonChanged,
    OrganizationCreated,
    OrganizationChanged,
)
