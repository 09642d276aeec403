"""The registry's API schemas: one ladder per entity (Base, Create, Update, Public)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.config import JsonDict

from shared.imports.schemas import ImportState, RejectedRow
from shared.indicators import Dimension, LifeStage
from shared.pagination import Page
from shared.text import NoNul
from shared.thai import AreaCode, AreaLevel, CitizenId


def _not_in_the_future(value: date) -> date:
    if value > date.today():
        raise ValueError("a birth date cannot be in the future")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), NoNul]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), NoNul]
BirthDate = Annotated[date, AfterValidator(_not_in_the_future)]
IndicatorCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}$")]
HouseCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")]
VillageCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{8}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{6,20}$")]

# Example values for the OpenAPI document (a household in Chachoengsao, the demo province).
_TEAM_ID = "0193a6a1-5b7e-7c3d-9f20-6f1d2c8e4a11"
_HOUSEHOLD_ID = "0193a6b2-7d1e-7f20-8c3a-4b5d6e7f8091"
_PERSON_EXAMPLE: JsonDict = {
    "citizen_id": "1-1017-00230-07-4",
    "title": "นางสาว",
    "first_name": "ศิริพร",
    "last_name": "แสงทอง",
    "sex": "female",
    "birth_date": "1971-05-14",
    "relation": "head",
    "disability": False,
    "welfare_card": True,
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Areas and indicators


class AreaPublic(BaseModel):
    code: str
    level: AreaLevel
    name_th: str
    name_en: str | None
    parent_code: str | None


class VillageCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"code": "24010412", "name_th": "บ้านคลองหลวง", "name_en": "Ban Khlong Luang"}
            ]
        }
    )

    code: VillageCode
    name_th: Name
    name_en: Name | None = None


class IndicatorPublic(BaseModel):
    code: str
    number: int
    dimension: Dimension
    name_th: str
    name_en: str
    set_version: str


# Organizations


class OrganizationKind(StrEnum):
    operation_center = "operation_center"
    agency = "agency"
    subdistrict_team = "subdistrict_team"
    mentor_team = "mentor_team"


class OrganizationCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "mentor_team",
                    "name": "ทีมพี่เลี้ยงตำบลบางตีนเป็ด ชุดที่ 1",
                    "area_code": "240104",
                    "parent_id": "0193a6a0-1c2d-7e4f-8a9b-0c1d2e3f4a5b",
                },
                {
                    "kind": "agency",
                    "name": "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัดฉะเชิงเทรา",
                    "area_code": "24",
                    "ministry": "กระทรวงการพัฒนาสังคมและความมั่นคงของมนุษย์",
                },
            ]
        }
    )

    kind: OrganizationKind
    name: Name
    area_code: AreaCode
    parent_id: UUID | None = None
    ministry: Name | None = None


class OrganizationUpdate(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "ทีมพี่เลี้ยงตำบลบางตีนเป็ด ชุดที่ 2"}]}
    )

    name: Name | None = None
    parent_id: UUID | None = None
    ministry: Name | None = None


class OrganizationPublic(BaseModel):
    id: UUID
    kind: OrganizationKind
    name: str
    area_code: str
    parent_id: UUID | None
    ministry: str | None
    created_at: datetime
    updated_at: datetime


class MemberCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "สมชาย ใจดี",
                    "position": "อาสาสมัครสาธารณสุขประจำหมู่บ้าน",
                    "phone": "081-234-5678",
                    "subject": "mentor-24010401",
                }
            ]
        }
    )

    name: Name
    position: Name | None = None
    phone: Phone | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul] | None = None


class MemberPublic(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    position: str | None
    phone: str | None
    subject: str | None
    created_at: datetime


class MentorTeamAssignment(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"team_id": _TEAM_ID}]})

    team_id: UUID | None = Field(description="The mentor team; null to unassign")


MAX_BULK_ASSIGNMENT = 1000


class MentorTeamBulkAssignment(Strict):
    """Many households to one mentor team (or to none), all or none of them."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"team_id": _TEAM_ID, "household_ids": [_HOUSEHOLD_ID]}]}
    )

    team_id: UUID | None = Field(description="The mentor team; null to unassign")
    household_ids: list[UUID] = Field(
        min_length=1,
        max_length=MAX_BULK_ASSIGNMENT,
        description=f"The households, each once (at most {MAX_BULK_ASSIGNMENT})",
    )

    @field_validator("household_ids")
    @classmethod
    def _each_once(cls, household_ids: list[UUID]) -> list[UUID]:
        if len(set(household_ids)) != len(household_ids):
            raise ValueError("a household is named more than once")
        return household_ids


class MentorTeamBulkResult(Strict):
    """What a bulk assignment did."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"team_id": _TEAM_ID, "households": 1, "changed": 1}]}
    )

    team_id: UUID | None = Field(description="The mentor team assigned (null: unassigned)")
    households: int = Field(description="Households named, all now under this team")
    changed: int = Field(description="Of them, those that were under another team or none")


# Persons


class Sex(StrEnum):
    male = "male"
    female = "female"


class PersonBase(Strict):
    title: Short | None = None
    first_name: Name
    last_name: Name
    sex: Sex | None = None
    birth_date: BirthDate | None = None
    relation: Short | None = None
    disability: bool = False
    welfare_card: bool = False


class PersonCreate(PersonBase):
    model_config = ConfigDict(json_schema_extra={"examples": [_PERSON_EXAMPLE]})

    citizen_id: CitizenId | None = Field(
        default=None, description="13 digits (dashes allowed); the 13th is a check digit"
    )


class PersonUpdate(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"last_name": "ใจดี", "welfare_card": True}]}
    )

    citizen_id: CitizenId | None = None
    title: Short | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    sex: Sex | None = None
    birth_date: BirthDate | None = None
    relation: Short | None = None
    disability: bool | None = None
    welfare_card: bool | None = None


class PersonPublic(BaseModel):
    id: UUID
    household_id: UUID
    citizen_id: str | None = Field(
        description="Masked (1-2345-xxxxx-xx-3) unless the role may see it"
    )
    title: str | None
    first_name: str
    last_name: str
    sex: Sex | None
    birth_date: date | None
    relation: str | None
    life_stage: LifeStage | None
    disability: bool
    welfare_card: bool
    created_at: datetime
    updated_at: datetime


class PersonLookup(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"citizen_id": "1101700230074", "reason": "ตรวจสอบสิทธิบัตรสวัสดิการแห่งรัฐ"}]
        }
    )

    citizen_id: CitizenId
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500), NoNul
    ]


# Households


class Location(Strict):
    lat: float = Field(ge=5.6, le=20.5, description="Latitude inside Thailand")
    lon: float = Field(ge=97.3, le=105.7, description="Longitude inside Thailand")


class HouseholdStatus(StrEnum):
    target = "target"
    in_progress = "in_progress"
    graduated = "graduated"
    moved = "moved"
    deceased = "deceased"
    refused = "refused"
    duplicate = "duplicate"


class HouseholdCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "area_code": "24010401",
                    "house_code": "24010000001",
                    "address": "352 หมู่ 1 ตำบลบางตีนเป็ด อำเภอเมืองฉะเชิงเทรา",
                    "location": {"lat": 13.6904, "lon": 101.0779},
                    "survey_year": 2567,
                    "failed_indicators": ["2560-09", "2560-20"],
                    "members": [_PERSON_EXAMPLE],
                }
            ]
        }
    )

    area_code: AreaCode = Field(description="8-digit village or 6-digit sub-district code")
    house_code: HouseCode | None = None
    address: Text | None = None
    location: Location | None = None
    survey_year: int | None = Field(
        default=None, ge=2500, le=2700, description="Buddhist-era year of the survey"
    )
    failed_indicators: list[IndicatorCode] = Field(default_factory=list, max_length=50)
    members: list[PersonCreate] = Field(default_factory=list, max_length=50)


class HouseholdUpdate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"address": "18/2 หมู่ 1 ตำบลบางตีนเป็ด", "failed_indicators": ["2560-20"]}]
        }
    )

    area_code: AreaCode | None = None
    house_code: HouseCode | None = None
    address: Text | None = None
    location: Location | None = None
    survey_year: int | None = Field(default=None, ge=2500, le=2700)
    failed_indicators: list[IndicatorCode] | None = Field(default=None, max_length=50)


class HouseholdPublic(BaseModel):
    id: UUID
    area_code: str
    house_code: str | None
    address: str | None
    location: Location | None
    survey_year: int | None
    failed_indicators: list[str]
    dimensions: list[Dimension]
    status: HouseholdStatus
    mentor_team_id: UUID | None
    member_count: int
    created_at: datetime
    updated_at: datetime


class HouseholdDetail(HouseholdPublic):
    members: list[PersonPublic]


class StatusTransition(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "graduated", "reason": "เยี่ยมติดตามแล้ว ผ่านเกณฑ์ จปฐ. ครบทุกตัวชี้วัด"}]
        }
    )

    status: HouseholdStatus
    reason: Reason | None = None


class StatusChangePublic(BaseModel):
    id: UUID
    household_id: UUID
    from_status: HouseholdStatus | None
    to_status: HouseholdStatus
    reason: str | None
    changed_by: str
    changed_at: datetime


class AuditEntryPublic(BaseModel):
    id: UUID
    household_id: UUID
    entity: str
    entity_id: UUID
    action: str
    changes: dict[str, object]
    actor: str
    at: datetime


HouseholdsPublic = Page[HouseholdPublic]


# Imports


class ImportPublic(BaseModel):
    id: UUID
    kind: str
    state: ImportState
    filename: str | None
    bytes_read: int
    rows_read: int
    rows_imported: int
    rows_rejected: int
    households_imported: int
    error: str | None = Field(description="Why the whole import failed (nothing was imported)")
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    rejected: list[RejectedRow] = Field(description="A page of the rejected rows, by line")
    next_cursor: str | None = Field(description="Where the next page of rejected rows starts")
