"""A household's whole logbook: visits, interventions, their status changes and the registry's."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, eventually
from tests.logbook.support import VISIT, household, intervention, organization, wait_known


async def _timeline(client: httpx.AsyncClient, household_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/households/{household_id}/logbook")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_the_timeline_holds_every_entry_in_time_order(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    mentor = logbook_as("mentor", "240101", UUID(team), subject="mentor-somsri")

    late_visit = await mentor.post(
        f"/v1/households/{household_id}/visits",
        json={**VISIT, "visited_at": "2026-11-20T09:00:00+07:00", "note": "ติดตามผล"},
    )
    # Recorded second, but it happened first: the timeline goes by when things happened.
    early_visit = await mentor.post(
        f"/v1/households/{household_id}/visits",
        json={**VISIT, "visited_at": "2026-11-01T09:00:00+07:00"},
    )
    assert late_visit.status_code == early_visit.status_code == 201
    planned = (
        await mentor.post(
            "/v1/interventions",
            json=intervention(household_id, description="ฝึกอาชีพทำขนม", planned_for="2026-12-05"),
        )
    ).json()
    started = await mentor.post(
        f"/v1/interventions/{planned['id']}/status",
        json={"status": "in_progress", "note": "เริ่มอบรม"},
    )
    assert started.status_code == 200, started.text
    corrected = await mentor.post(
        f"/v1/interventions/{planned['id']}/corrections",
        json={"amount_thb": "900.00", "reason": "ค่าอบรมจริง"},
    )
    assert corrected.status_code == 201, corrected.text
    correction = corrected.json()
    done = await mentor.post(
        f"/v1/interventions/{correction['id']}/status", json={"status": "completed"}
    )
    assert done.status_code == 200, done.text

    async def registry_status_arrived() -> list[dict[str, Any]] | None:
        entries = await _timeline(mentor, household_id)
        statuses = [e for e in entries if e["kind"] == "household_status"]
        return entries if len(statuses) == 2 else None

    entries = await eventually(registry_status_arrived, what="the registry's in_progress")

    moments = [datetime.fromisoformat(e["at"]) for e in entries]
    assert moments == sorted(moments)
    assert len({e["id"] for e in entries}) == len(entries)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_kind.setdefault(entry["kind"], []).append(entry)
    assert {k: len(v) for k, v in by_kind.items()} == {
        "visit": 2,
        "intervention": 2,
        "intervention_status": 2,
        "household_status": 2,
    }

    visits = by_kind["visit"]
    assert [v["id"] for v in visits] == [early_visit.json()["id"], late_visit.json()["id"]]
    assert visits[1]["detail"]["note"] == "ติดตามผล"
    assert visits[1]["detail"]["analysis"] == VISIT["analysis"]
    assert visits[1]["detail"]["capitals"] == VISIT["capitals"]
    assert visits[1]["detail"]["problems"] == VISIT["problems"]
    assert visits[1]["detail"]["team_id"] == team
    assert visits[1]["detail"]["next_visit_due"] == "2026-12-20"
    assert visits[1]["detail"]["recorded_by"] == "mentor-somsri"

    first, second = by_kind["intervention"]
    assert first["id"] == planned["id"] and second["id"] == correction["id"]
    # Each entry as it was recorded, whatever became of it later.
    assert first["summary"] == "INC-02 (income) recorded as planned"
    assert second["summary"] == "INC-02 (income) recorded as in_progress"
    assert first["detail"] | {"supersedes": None} == {
        "menu_code": "INC-02",
        "dimension": "income",
        "status": "planned",
        "person_id": None,
        "agency_id": None,
        "amount_thb": "1200.50",
        "planned_for": "2026-12-05",
        "supersedes": None,
        "description": "ฝึกอาชีพทำขนม",
        "recorded_by": "mentor-somsri",
    }
    assert second["detail"]["supersedes"] == planned["id"]
    assert second["detail"]["amount_thb"] == "900.00"

    changes = by_kind["intervention_status"]
    assert [(c["detail"]["intervention_id"], c["summary"]) for c in changes] == [
        (planned["id"], "intervention planned → in_progress"),
        (correction["id"], "intervention in_progress → completed"),
    ]
    assert changes[0]["detail"]["note"] == "เริ่มอบรม"
    assert {c["detail"]["changed_by"] for c in changes} == {"mentor-somsri"}

    registered, progressing = by_kind["household_status"]
    assert registered["summary"] == "household new → target"
    assert progressing["summary"] == "household target → in_progress"
    assert progressing["detail"]["changed_by"] == "service:logbook"

    # The visits happened before the household's registration was recorded.
    kinds = [e["kind"] for e in entries]
    assert kinds[:2] == ["visit", "visit"]
    assert entries.index(registered) < entries.index(first) < entries.index(changes[0])
    assert entries.index(changes[0]) < entries.index(second) < entries.index(changes[1])


async def test_the_timeline_is_read_within_scope_only(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id)
    officer = logbook_as("district_officer", "2401")
    entries = await _timeline(officer, household_id)
    assert [(e["kind"], e["summary"]) for e in entries] == [
        ("household_status", "household new → target")
    ]
    outside = await logbook_as("province_officer", "25").get(
        f"/v1/households/{household_id}/logbook"
    )
    assert outside.status_code == 404
