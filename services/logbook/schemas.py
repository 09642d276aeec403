"""The logbook's API schemas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.indicators import Dimension
from shared.text import NoNul

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), NoNul
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul
]
MenuCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,5}-[0-9]{2,3}$")]
Score = Annotated[int, Field(ge=1, le=5)]
Amount = Annotated[
    Decimal,
    Field(
        ge=0,
        le=Decimal("1000000000"),
        max_digits=14,
        decimal_places=2,
        description="THB, as a decimal string",
    ),
    AfterValidator(lambda amount: amount.quantize(Decimal("0.01"))),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Menus


class MenuItemCreate(Strict):
    code: MenuCode
    dimension: Dimension
    name_th: ShortText
    name_en: ShortText
    agency_hint: ShortText | None = None


class MenuItemPublic(BaseModel):
    code: str
    dimension: Dimension
    name_th: str
    name_en: str
    agency_hint: str | None


# Visits


class Analysis(Strict):
    """The 4 ท: attitude, skills, resources, way out (ทัศนคติ ทักษะ ทรัพยากร ทางออก)."""

    attitude: Text | None = None
    skills: Text | None = None
    resources: Text | None = None
    way_out: Text | None = None


class Capitals(Strict):
    """The five capitals, each scored 1-5."""

    human: Score
    physical: Score
    economic: Score
    natural: Score
    social: Score


class Problem(Strict):
    dimension: Dimension
    indicator: Annotated[str, StringConstraints(max_length=20), NoNul] | None = Field(
        default=None, description="Indicator code, e.g. 2560-20; it must be of the dimension"
    )
    note: ShortText | None = None


class VisitCreate(Strict):
    visited_at: datetime
    team_id: UUID | None = Field(default=None, description="The visiting mentor team")
    analysis: Analysis = Field(default_factory=Analysis)
    capitals: Capitals | None = None
    problems: list[Problem] = Field(default_factory=list, max_length=50)
    note: Text | None = None
    next_visit_due: date | None = Field(
        default=None, description="When to come back; by default from the household's situation"
    )


class VisitPublic(BaseModel):
    id: UUID
    household_id: UUID
    team_id: UUID | None
    visited_at: datetime
    analysis: Analysis
    capitals: Capitals | None
    problems: list[Problem]
    note: str | None
    next_visit_due: date
    recorded_by: str
    recorded_at: datetime


# Interventions


class InterventionStatus(StrEnum):
    planned = "planned"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class InterventionCreate(Strict):
    household_id: UUID
    person_id: UUID | None = None
    dimension: Dimension
    menu_code: MenuCode
    agency_id: UUID | None = None
    description: Text | None = None
    amount_thb: Amount | None = None
    status: InterventionStatus = InterventionStatus.planned
    planned_for: date | None = None
    completed_at: datetime | None = None


class InterventionCorrection(Strict):
    """The corrected entry; fields left out keep the corrected entry's values."""

    person_id: UUID | None = None
    dimension: Dimension | None = None
    menu_code: MenuCode | None = None
    agency_id: UUID | None = None
    description: Text | None = None
    amount_thb: Amount | None = None
    planned_for: date | None = None
    completed_at: datetime | None = None
    reason: ShortText


class StatusUpdate(Strict):
    status: InterventionStatus
    note: ShortText | None = None


class StatusChangePublic(BaseModel):
    from_status: InterventionStatus | None
    to_status: InterventionStatus
    note: str | None
    changed_by: str
    changed_at: datetime


class InterventionPublic(BaseModel):
    id: UUID
    household_id: UUID
    area_code: str
    person_id: UUID | None
    dimension: Dimension
    menu_code: str
    agency_id: UUID | None
    description: str | None
    amount_thb: Decimal | None
    status: InterventionStatus
    planned_for: date | None
    completed_at: datetime | None
    supersedes: UUID | None
    superseded_by: UUID | None
    recorded_by: str
    recorded_at: datetime


class InterventionDetail(InterventionPublic):
    history: list[StatusChangePublic]


# Worklist and timeline


class OpenProblem(BaseModel):
    dimension: Dimension
    indicator: str | None
    note: str | None
    found_at: datetime


class WorklistItem(BaseModel):
    household_id: UUID
    area_code: str
    status: str
    last_visit_at: datetime | None
    next_visit_due: date | None
    days_overdue: int | None = Field(description="Days past the due date; null if never visited")
    open_interventions: list[InterventionPublic]
    unaddressed_problems: list[OpenProblem]


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["visit", "intervention", "intervention_status", "household_status"]
    id: UUID
    summary: str
    detail: dict[str, object]
