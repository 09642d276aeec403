"""The logbook's tables: entries are appended, never edited in place."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from shared.events import uuid7


def _now() -> datetime:
    return datetime.now(UTC)


def _time_column() -> Any:
    return Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _moment_column() -> Any:
    return Column(sa.DateTime(timezone=True))


class MenuItem(SQLModel, table=True):
    __tablename__ = "menu_item"

    code: str = Field(primary_key=True)
    dimension: str
    name_th: str
    name_en: str
    agency_hint: str | None = None
    created_by: str
    created_at: datetime = Field(default_factory=_now, sa_column=_time_column())


class HouseholdRef(SQLModel, table=True):
    """The logbook's read model of a household, fed by registry events."""

    __tablename__ = "household_ref"

    id: UUID = Field(primary_key=True)
    area_code: str
    mentor_team_id: UUID | None = None
    status: str
    # When the registry made the change each of the three holds (its event's time): an older
    # change delivered late leaves a newer one as it is. None where the registry's own answer
    # (asked over HTTP) set it.
    area_at: datetime | None = Field(default=None, sa_column=_moment_column())
    team_at: datetime | None = Field(default=None, sa_column=_moment_column())
    status_at: datetime | None = Field(default=None, sa_column=_moment_column())
    refreshed_at: datetime = Field(default_factory=_now, sa_column=_time_column())


class OrganizationRef(SQLModel, table=True):
    """Mentor teams and agencies known from registry events."""

    __tablename__ = "organization_ref"

    id: UUID = Field(primary_key=True)
    kind: str
    name: str
    area_code: str


class PersonRef(SQLModel, table=True):
    """Which household each person belongs to, known from registry events."""

    __tablename__ = "person_ref"

    id: UUID = Field(primary_key=True)
    household_id: UUID


class HouseholdStatusRef(SQLModel, table=True):
    """The registry's status changes of a household, for its timeline."""

    __tablename__ = "household_status_ref"

    event_id: UUID = Field(primary_key=True)
    household_id: UUID
    from_status: str | None
    to_status: str
    reason: str | None = None
    changed_by: str
    changed_at: datetime = Field(sa_column=Column(sa.DateTime(timezone=True), nullable=False))


class Visit(SQLModel, table=True):
    __tablename__ = "visit"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    household_id: UUID
    area_code: str
    team_id: UUID | None = None
    visited_at: datetime = Field(sa_column=Column(sa.DateTime(timezone=True), nullable=False))
    analysis: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    capitals: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    problems: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    note: str | None = None
    next_visit_due: date
    recorded_by: str
    recorded_at: datetime = Field(default_factory=_now, sa_column=_time_column())


class Intervention(SQLModel, table=True):
    __tablename__ = "intervention"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    household_id: UUID
    area_code: str
    person_id: UUID | None = None
    dimension: str
    menu_code: str
    agency_id: UUID | None = None
    description: str | None = None
    amount_thb: Decimal | None = Field(default=None, sa_column=Column(sa.Numeric(14, 2)))
    planned_for: date | None = None
    completed_at: datetime | None = Field(
        default=None, sa_column=Column(sa.DateTime(timezone=True))
    )
    # The current status, kept beside the append-only history in intervention_status_change.
    status: str
    supersedes: UUID | None = None
    recorded_by: str
    recorded_at: datetime = Field(default_factory=_now, sa_column=_time_column())


class InterventionStatusChange(SQLModel, table=True):
    __tablename__ = "intervention_status_change"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    intervention_id: UUID
    household_id: UUID
    from_status: str | None
    to_status: str
    note: str | None = None
    changed_by: str
    changed_at: datetime = Field(default_factory=_now, sa_column=_time_column())


class HistoryImportJob(SQLModel, table=True):
    """One bulk import of logbook history: its state, counts and the error that stopped it."""

    __tablename__ = "history_import_job"

    id: UUID = Field(default_factory=uuid7, primary_key=True)
    kind: str = "logbook"
    state: str = "queued"
    created_by: str
    role: str
    scope: str
    filename: str | None = None
    idempotency_key: str | None = None
    body_sha256: bytes | None = None
    bytes_read: int = Field(default=0, sa_type=sa.BigInteger)  # files beyond 2 GiB
    rows_read: int = Field(default=0, sa_type=sa.BigInteger)
    rows_imported: int = Field(default=0, sa_type=sa.BigInteger)
    rows_rejected: int = Field(default=0, sa_type=sa.BigInteger)
    visits_imported: int = Field(default=0, sa_type=sa.BigInteger)
    interventions_imported: int = Field(default=0, sa_type=sa.BigInteger)
    error: str | None = None
    created_at: datetime = Field(default=None, sa_column=_time_column())
    updated_at: datetime = Field(default=None, sa_column=_time_column())
    finished_at: datetime | None = Field(default=None, sa_column=Column(sa.DateTime(timezone=True)))


class HistoryImportRejection(SQLModel, table=True):
    """A row of an import that changed nothing: its line, the column and why."""

    __tablename__ = "history_import_rejection"

    job_id: UUID = Field(primary_key=True)
    line: int = Field(sa_column=Column(sa.BigInteger, primary_key=True))
    column: str = Field(primary_key=True)
    reason: str
