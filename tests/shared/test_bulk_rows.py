"""Bulk paths write many rows in one statement a table: in their order, typed as the columns,
and with the conflict rule the caller gives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.models import HouseholdRef
from services.logbook.repository import LogbookRepository
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from shared.db import create_engine, create_sessionmaker, insert_rows, table_of, transaction
from shared.events import Event
from shared.outbox import Outbox, OutboxMessage
from shared.settings import ServiceSettings
from tests.conftest import db_rows


@asynccontextmanager
async def _transaction(settings: ServiceSettings) -> AsyncIterator[AsyncSession]:
    """One transaction on the service's database, its engine gone afterwards."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def _event(n: int) -> Event:
    return Event(
        type="registry.household.registered",
        source="test",
        subject=str(uuid4()),
        area_code="240101",
        schema_version=1,
        data={"n": n, "name": "นางสาว ทดสอบ", "nested": {"list": [1, 2, n]}},
    )


async def test_staged_events_keep_their_order_and_payloads(
    registry_settings: RegistrySettings,
) -> None:
    events = [_event(n) for n in range(300)]
    async with _transaction(registry_settings) as session:
        outbox = Outbox(session, source="test", headers={"X-Request-ID": "bulk"})
        await outbox.add_many(events)
    rows = await db_rows(registry_settings, "SELECT id, payload, headers FROM outbox ORDER BY seq")
    assert [r["id"] for r in rows] == [e.id for e in events]
    for row, event in zip(rows, events, strict=True):
        assert Event.model_validate_json(row["payload"]) == event
    assert {r["headers"] for r in rows} == {'{"X-Request-ID": "bulk"}'}


async def test_rows_that_set_different_columns_each_get_their_own(
    logbook_settings: LogbookSettings,
) -> None:
    team = uuid4()
    rows: list[dict[str, Any]] = [
        {"id": uuid4(), "area_code": "24010101", "status": "target"},
        {"id": uuid4(), "area_code": "24010102", "status": "target", "mentor_team_id": team},
        {"id": uuid4(), "area_code": "24010103", "status": "in_progress"},
    ]
    async with _transaction(logbook_settings) as session:
        await insert_rows(session, table_of(HouseholdRef), rows)
    stored = await db_rows(
        logbook_settings,
        "SELECT id, area_code, status, mentor_team_id, refreshed_at FROM household_ref",
    )
    assert {(r["id"], r["area_code"], r["status"], r["mentor_team_id"]) for r in stored} == {
        (row["id"], row["area_code"], row["status"], row.get("mentor_team_id")) for row in rows
    }
    assert all(r["refreshed_at"] is not None for r in stored)  # the column's default


async def test_read_model_rows_are_kept_or_replaced_as_asked(
    logbook_settings: LogbookSettings,
) -> None:
    first, second = uuid4(), uuid4()
    team = uuid4()

    def household(id: UUID, area: str, team_id: UUID | None) -> dict[str, Any]:
        return {"id": id, "area_code": area, "mentor_team_id": team_id, "status": "target"}

    async with _transaction(logbook_settings) as session:
        repo = LogbookRepository(session)
        await repo.insert_households([household(first, "24010101", None)], replace=False)
    async with _transaction(logbook_settings) as session:
        repo = LogbookRepository(session)
        # Kept: the first is there already; the second is new.
        await repo.insert_households(
            [household(second, "24010102", team), household(first, "10010101", team)],
            replace=False,
        )
    kept = await db_rows(
        logbook_settings, "SELECT id, area_code, mentor_team_id FROM household_ref"
    )
    assert {(r["id"], r["area_code"], r["mentor_team_id"]) for r in kept} == {
        (first, "24010101", None),
        (second, "24010102", team),
    }
    async with _transaction(logbook_settings) as session:
        repo = LogbookRepository(session)
        await repo.insert_households([household(first, "10010101", team)], replace=True)
    replaced = await db_rows(
        logbook_settings, "SELECT area_code, mentor_team_id FROM household_ref WHERE id = $1", first
    )
    assert [(r["area_code"], r["mentor_team_id"]) for r in replaced] == [("10010101", team)]


async def test_rows_keep_their_order_when_their_columns_differ(
    registry_settings: RegistrySettings,
) -> None:
    """An identity column numbers the rows in the order given, runs of different columns too;
    JSON values that are lists or text go in as they are."""
    payloads: list[Any] = [[1, 2, 3], {"n": 1}, "ข้อความ", {"n": 3}, [{"deep": [4]}], {"n": 5}]
    rows: list[dict[str, Any]] = []
    for n, payload in enumerate(payloads):
        row = {"id": uuid4(), "subject": f"test.{n}", "payload": payload}
        if n % 3 == 1:
            row["headers"] = {"X-Request-ID": str(n)}  # the others take the column's default
        rows.append(row)
    async with _transaction(registry_settings) as session:
        await insert_rows(session, table_of(OutboxMessage), rows)
    stored = await db_rows(
        registry_settings, "SELECT id, payload::text, headers::text FROM outbox ORDER BY seq"
    )
    assert [r["id"] for r in stored] == [row["id"] for row in rows]
    assert [json.loads(r["payload"]) for r in stored] == payloads
    assert [json.loads(r["headers"]) for r in stored] == [row.get("headers", {}) for row in rows]


async def test_a_column_made_in_python_must_be_given(
    registry_settings: RegistrySettings,
) -> None:
    """A column whose default is made in Python (an `id`) is not made once for all the rows
    of the statement: left out, it fails and nothing goes in."""
    probe = sa.Table(
        "bulk_probe",
        sa.MetaData(),
        sa.Column("id", sa.Uuid, primary_key=True, default=uuid4),
        sa.Column("name", sa.Text, nullable=False),
    )
    await db_rows(registry_settings, "CREATE TABLE bulk_probe (id uuid PRIMARY KEY, name text)")
    with pytest.raises(IntegrityError, match="null value"):
        async with _transaction(registry_settings) as session:
            await insert_rows(session, probe, [{"name": "ก"}])
    assert await db_rows(registry_settings, "SELECT id FROM bulk_probe") == []


async def test_a_household_given_twice_is_replaced_by_the_last(
    logbook_settings: LogbookSettings,
) -> None:
    household = uuid4()
    given = [
        {"id": household, "area_code": "24010101", "status": "target", "mentor_team_id": None},
        {"id": household, "area_code": "24010101", "status": "in_progress", "mentor_team_id": None},
    ]
    for replace, expected in ((False, "target"), (True, "in_progress")):
        async with _transaction(logbook_settings) as session:
            await LogbookRepository(session).insert_households(given, replace=replace)
        stored = await db_rows(logbook_settings, "SELECT status FROM household_ref")
        assert [r["status"] for r in stored] == [expected]
