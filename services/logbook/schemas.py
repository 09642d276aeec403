"""The logbook's API schemas."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from shared.imports.schemas import ImportState, RejectedRow
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


def _within_utc_years(moment: datetime) -> datetime:
    # PostgreSQL keeps a moment in UTC; year 1 at a positive offset (or 9999 at a negative one)
    # has no UTC date Python can send, so it is a field error here, not a 500 at the insert.
    try:
        moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time lies outside the years 1 to 9999 in UTC") from exc
    return moment


# A moment as RFC 3339 gives one, with its offset: one without is refused, not guessed at (an
# officer's 10:00 in Bangkok read as 10:00 UTC would be five in the afternoon).
Moment = Annotated[AwareDatetime, AfterValidator(_within_utc_years)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Menus


class MenuItemCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "INC-12",
                    "dimension": "income",
                    "name_th": "ส่งเสริมการปลูกผักปลอดสารพิษเพื่อจำหน่าย",
                    "name_en": "Support for growing and selling pesticide-free vegetables",
                    "agency_hint": "สำนักงานเกษตรจังหวัด",
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "visited_at": "2026-11-02T10:30:00+07:00",
                    "team_id": "0193a6a1-5b7e-7c3d-9f20-6f1d2c8e4a11",
                    "analysis": {
                        "attitude": "อยากมีรายได้ประจำ พร้อมเข้ารับการฝึกอาชีพ",
                        "skills": "ทำขนมไทยได้ เคยรับจ้างทั่วไป",
                        "resources": "มีที่ดินหลังบ้านประมาณ 1 งาน",
                        "way_out": "ฝึกอาชีพระยะสั้นและขอทุนประกอบอาชีพ",
                    },
                    "capitals": {
                        "human": 3,
                        "physical": 2,
                        "economic": 1,
                        "natural": 3,
                        "social": 4,
                    },
                    "problems": [
                        {"dimension": "income", "indicator": "2560-20", "note": "ไม่มีงานประจำ"}
                    ],
                    "note": "นัดติดตามหลังการฝึกอาชีพ",
                }
            ]
        }
    )

    visited_at: Moment
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "household_id": "0193a6b2-7d1e-7f20-8c3a-4b5d6e7f8091",
                    "dimension": "income",
                    "menu_code": "INC-02",
                    "agency_id": "0193a6a0-9e8d-7c6b-8a59-4f3e2d1c0b0a",
                    "description": "อบรมทำขนมไทยเพื่อจำหน่าย 5 วัน",
                    "amount_thb": "1500.00",
                    "status": "planned",
                    "planned_for": "2026-12-01",
                }
            ]
        }
    )

    household_id: UUID
    person_id: UUID | None = None
    dimension: Dimension
    menu_code: MenuCode
    agency_id: UUID | None = None
    description: Text | None = None
    amount_thb: Amount | None = None
    status: InterventionStatus = InterventionStatus.planned
    planned_for: date | None = None
    completed_at: Moment | None = None


class InterventionCorrection(Strict):
    """The corrected entry; fields left out keep the corrected entry's values."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"amount_thb": "1200.00", "reason": "ค่าวัสดุจริงน้อยกว่าที่บันทึกไว้"}]
        }
    )

    person_id: UUID | None = None
    dimension: Dimension | None = None
    menu_code: MenuCode | None = None
    agency_id: UUID | None = None
    description: Text | None = None
    amount_thb: Amount | None = None
    planned_for: date | None = None
    completed_at: Moment | None = None
    reason: ShortText


class StatusUpdate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "completed", "note": "ผ่านการอบรมครบ 5 วัน ได้รับวุฒิบัตร"}]
        }
    )

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


# History imports


class LogbookImportPublic(BaseModel):
    """A history import: its state, its counts and a page of its rejected rows."""

    id: UUID
    kind: str
    state: ImportState
    filename: str | None
    bytes_read: int
    rows_read: int
    rows_imported: int
    rows_rejected: int
    visits_imported: int
    interventions_imported: int
    error: str | None = Field(description="Why the whole import failed (nothing was imported)")
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    rejected: list[RejectedRow] = Field(description="A page of the rejected rows, by line")
    next_cursor: str | None = Field(description="Where the next page of rejected rows starts")
