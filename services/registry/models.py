"""The registry's tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Column, Field, SQLModel

from shared.events import uuid7


def _now_column() -> Any:
    """A timestamp the database sets on insert (fields using it default to None in Python)."""
    return Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


class Area(SQLModel, table=True):
    __tablename__ = "area"

    code: str = Field(primary_key=True)
    level: str
    name_th: str
    name_en: str | None = None
    parent_code: str | None = Field(default=None, index=True)


class IndicatorRow(SQLModel, table=True):
    __tablename__ = "indicator"

    code: str = Field(primary_key=True)
    set_version: str
    number: int
    dimension: str
    name_th: str
    name_en: str


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    kind: str
    name: str
    area_code: str
    parent_id: UUID | None = None
    ministry: str | None = None
    version: int = 1
    created_at: datetime = Field(default=None, sa_column=_now_column())
    updated_at: datetime = Field(default=None, sa_column=_now_column())


class Member(SQLModel, table=True):
    __tablename__ = "member"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    organization_id: UUID
    name: str
    position: str | None = None
    phone: str | None = None
    subject: str | None = None
    created_at: datetime = Field(default=None, sa_column=_now_column())


class Household(SQLModel, table=True):
    __tablename__ = "household"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    house_code: str | None = None
    area_code: str
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    survey_year: int | None = None
    failed_indicators: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(sa.Text), nullable=False)
    )
    status: str = "target"
    mentor_team_id: UUID | None = None
    search_text: str = ""
    # How an import without a house code knows the household again: area code and file key.
    import_key: str | None = None
    version: int = 1
    created_by: str
    created_at: datetime = Field(default=None, sa_column=_now_column())
    updated_at: datetime = Field(default=None, sa_column=_now_column())


class Person(SQLModel, table=True):
    __tablename__ = "person"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    household_id: UUID
    citizen_id_cipher: bytes | None = None
    citizen_id_index: bytes | None = None
    citizen_id_masked: str | None = None
    title: str | None = None
    first_name: str
    last_name: str
    sex: str | None = None
    birth_date: date | None = None
    relation: str | None = None
    disability: bool = False
    welfare_card: bool = False
    version: int = 1
    created_at: datetime = Field(default=None, sa_column=_now_column())
    updated_at: datetime = Field(default=None, sa_column=_now_column())


class StatusChange(SQLModel, table=True):
    __tablename__ = "status_change"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    household_id: UUID
    from_status: str | None
    to_status: str
    reason: str | None = None
    changed_by: str
    changed_at: datetime = Field(default=None, sa_column=_now_column())


class AuditEntry(SQLModel, table=True):
    """One change to a household or a member: old and new values, who and when."""

    __tablename__ = "audit_entry"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    household_id: UUID
    entity: str
    entity_id: UUID
    action: str
    changes: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    actor: str
    at: datetime = Field(default=None, sa_column=_now_column())


class PiiAccess(SQLModel, table=True):
    """Every read of a person's data (`read`, `read_unmasked`) and every lookup by ID (PDPA)."""

    __tablename__ = "pii_access"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    subject: str
    role: str
    action: str
    person_id: UUID | None = None
    reason: str | None = None
    at: datetime = Field(default=None, sa_column=_now_column())


class ImportJob(SQLModel, table=True):
    """One bulk import of the target list: its state, counts and the error that stopped it."""

    __tablename__ = "import_job"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    kind: str = "households"
    state: str = "queued"
    created_by: str
    role: str
    scope: str
    filename: str | None = None
    idempotency_key: str | None = None  # forgotten if the job fails
    body_sha256: bytes | None = None  # the file's, once staged whole
    bytes_read: int = Field(default=0, sa_type=sa.BigInteger)  # files beyond 2 GiB
    rows_read: int = Field(default=0, sa_type=sa.BigInteger)
    rows_imported: int = Field(default=0, sa_type=sa.BigInteger)
    rows_rejected: int = Field(default=0, sa_type=sa.BigInteger)
    households_imported: int = Field(default=0, sa_type=sa.BigInteger)
    error: str | None = None
    created_at: datetime = Field(default=None, sa_column=_now_column())
    updated_at: datetime = Field(default=None, sa_column=_now_column())
    finished_at: datetime | None = Field(default=None, sa_column=Column(sa.DateTime(timezone=True)))


class ImportRejection(SQLModel, table=True):
    """A row of an import that changed nothing: its line, the column and why."""

    __tablename__ = "import_rejection"

    job_id: UUID = Field(primary_key=True)
    line: int = Field(sa_column=Column(sa.BigInteger, primary_key=True))
    column: str = Field(primary_key=True)
    reason: str
