"""Events the logbook publishes on the LOGBOOK stream.

Each carries the household's area code and the dimension, so analytics aggregates without
calling anyone. Amounts are decimal strings of THB.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

from shared.events import EventData


class ProblemFound(BaseModel):
    dimension: str
    indicator: str | None


class VisitRecorded(EventData):
    type = "logbook.visit.recorded"

    visit_id: UUID
    household_id: UUID
    area_code: str
    team_id: UUID | None
    visited_at: datetime
    first_visit: bool
    problems: list[ProblemFound]
    capitals: dict[str, int]
    next_visit_due: date | None
    supersedes: UUID | None = None


class InterventionRecorded(EventData):
    type = "logbook.intervention.recorded"

    intervention_id: UUID
    household_id: UUID
    area_code: str
    person_id: UUID | None
    dimension: str
    menu_code: str
    agency_id: UUID | None
    amount_thb: Decimal | None
    status: str
    planned_for: date | None
    completed_at: datetime | None
    recorded_at: datetime
    supersedes: UUID | None = None


class InterventionStatusChanged(EventData):
    type = "logbook.intervention.status_changed"

    intervention_id: UUID
    household_id: UUID
    area_code: str
    dimension: str
    menu_code: str
    amount_thb: Decimal | None
    from_status: str
    to_status: str
    changed_at: datetime
    note: str | None


class InterventionSuperseded(EventData):
    type = "logbook.intervention.superseded"

    intervention_id: UUID
    superseded_by: UUID
    household_id: UUID
    area_code: str
    dimension: str
    menu_code: str
    amount_thb: Decimal | None
    status: str


LOGBOOK_EVENTS: tuple[type[EventData], ...] = (
    VisitRecorded,
    InterventionRecorded,
    InterventionStatusChanged,
    InterventionSuperseded,
)
