"""The logbook's events move a `target` household to `in_progress`, once, and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
from fastapi import FastAPI

from services.registry.settings import RegistrySettings
from shared.db import transaction
from shared.events import Event
from shared.events.logbook import InterventionRecorded, VisitRecorded
from tests.conftest import registry_rows
from tests.registry.support import register


def visit(household: dict[str, Any]) -> Event:
    data = VisitRecorded(
        visit_id=uuid4(),
        household_id=UUID(household["id"]),
        area_code=household["area_code"],
        team_id=None,
        visited_at=datetime.now(UTC),
        first_visit=True,
        problems=[],
        capitals={},
        next_visit_due=None,
    )
    return Event.of(data, source="logbook", subject=data.visit_id, area_code=data.area_code)


def intervention(household: dict[str, Any], status: str) -> Event:
    data = InterventionRecorded(
        intervention_id=uuid4(),
        household_id=UUID(household["id"]),
        area_code=household["area_code"],
        person_id=None,
        dimension="income",
        menu_code="INC-01",
        agency_id=None,
        amount_thb=None,
        status=status,
        planned_for=None,
        completed_at=None,
        recorded_at=datetime.now(UTC),
    )
    return Event.of(data, source="logbook", subject=data.intervention_id, area_code=data.area_code)


async def test_one_batch_moves_each_target_household_on_once_and_no_other(
    registry_app: FastAPI, admin: httpx.AsyncClient, registry_settings: RegistrySettings
) -> None:
    visited, cancelled_only, already, graduated = [await register(admin) for _ in range(4)]
    moved = await admin.post(
        f"/v1/households/{already['id']}/status",
        json={"status": "in_progress", "reason": "visited before the logbook"},
    )
    assert moved.status_code in (200, 201), moved.text
    for status, reason in (("in_progress", "first visit"), ("graduated", "income above the line")):
        changed = await admin.post(
            f"/v1/households/{graduated['id']}/status", json={"status": status, "reason": reason}
        )
        assert changed.status_code in (200, 201), changed.text
    events = [
        visit(visited),
        intervention(visited, "planned"),
        visit(visited),
        intervention(cancelled_only, "cancelled"),
        intervention(already, "completed"),
        visit(graduated),
        visit({"id": str(uuid4()), "area_code": "240101"}),  # a household the registry lacks
    ]

    async with transaction(registry_app.state.sessionmaker) as session:
        applied = await registry_app.state.consumer.apply(session, events)

    assert applied == len(events)
    statuses = {
        h["id"]: (await admin.get(f"/v1/households/{h['id']}")).json()["status"]
        for h in (visited, cancelled_only, already, graduated)
    }
    assert statuses == {
        visited["id"]: "in_progress",
        cancelled_only["id"]: "target",
        already["id"]: "in_progress",
        graduated["id"]: "graduated",
    }
    rows = await registry_rows(
        registry_settings,
        "SELECT payload FROM outbox WHERE payload->>'type' = 'registry.household.status_changed'",
    )
    by_household: dict[str, list[str]] = {}
    for row in rows:
        data = json.loads(row["payload"])["data"]
        by_household.setdefault(data["household_id"], []).append(data["reason"])
    assert by_household == {
        visited["id"]: ["first visit recorded"],
        already["id"]: ["visited before the logbook"],
        graduated["id"]: ["first visit", "income above the line"],
    }
