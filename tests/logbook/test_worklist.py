"""A mentor team's worklist: whom to visit next, and what is still open for each household."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import httpx

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory
from tests.logbook.support import (
    VISIT,
    household,
    intervention,
    organization,
    set_status,
    wait_known,
)


async def _visit(
    mentor: httpx.AsyncClient, household_id: str, visited_at: str, next_due: str, **fields: Any
) -> dict[str, Any]:
    response = await mentor.post(
        f"/v1/households/{household_id}/visits",
        json={**VISIT, "visited_at": visited_at, "next_visit_due": next_due, **fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _team_household(
    admin: httpx.AsyncClient, settings: LogbookSettings, team: str | None
) -> str:
    household_id = await household(admin, team)
    if team is None:
        await wait_known(settings, household_id)
    else:
        await wait_known(settings, household_id, mentor_team_id=team)
    return household_id


async def test_never_visited_first_then_most_overdue_by_the_latest_visit(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    other_team = await organization(admin)
    mentor = logbook_as("mentor", "240101", UUID(team))

    overdue_a_little = await _team_household(admin, logbook_settings, team)
    not_due_yet = await _team_household(admin, logbook_settings, team)
    never_one = await _team_household(admin, logbook_settings, team)
    overdue_most = await _team_household(admin, logbook_settings, team)
    brought_forward = await _team_household(admin, logbook_settings, team)
    never_two = await _team_household(admin, logbook_settings, team)

    await _visit(mentor, overdue_a_little, "2026-10-20T10:00:00+07:00", "2026-11-20")
    await _visit(mentor, not_due_yet, "2026-11-20T10:00:00+07:00", "2027-01-10")
    await _visit(mentor, overdue_most, "2026-10-01T10:00:00+07:00", "2026-10-15")
    # The later visit moves the due date earlier: it, not the furthest date, decides.
    await _visit(mentor, brought_forward, "2026-10-01T10:00:00+07:00", "2027-06-01")
    latest = await _visit(mentor, brought_forward, "2026-10-05T10:00:00+07:00", "2026-10-10")

    # Households the team does not (or no longer) work on are left out.
    graduated = await _team_household(admin, logbook_settings, team)
    await set_status(admin, graduated, "in_progress")
    await set_status(admin, graduated, "graduated", "ไม่มีตัวชี้วัดที่ไม่ผ่านแล้ว")
    moved = await _team_household(admin, logbook_settings, team)
    await set_status(admin, moved, "moved", "ย้ายไปต่างจังหวัด")
    await _team_household(admin, logbook_settings, other_team)
    await _team_household(admin, logbook_settings, None)
    await wait_known(logbook_settings, graduated, status="graduated")
    await wait_known(logbook_settings, moved, status="moved")

    response = await mentor.get(f"/v1/teams/{team}/worklist")
    assert response.status_code == 200, response.text
    items = response.json()
    ids = [item["household_id"] for item in items]
    assert set(ids[:2]) == {never_one, never_two}
    assert ids[2:] == [brought_forward, overdue_most, overdue_a_little, not_due_yet]

    today = datetime.now(UTC).date()
    by_id = {item["household_id"]: item for item in items}
    for never in (never_one, never_two):
        assert by_id[never]["last_visit_at"] is None
        assert by_id[never]["next_visit_due"] is None
        assert by_id[never]["days_overdue"] is None
    expected_due = {
        brought_forward: "2026-10-10",
        overdue_most: "2026-10-15",
        overdue_a_little: "2026-11-20",
        not_due_yet: "2027-01-10",
    }
    for household_id, due in expected_due.items():
        assert by_id[household_id]["next_visit_due"] == due
        assert by_id[household_id]["days_overdue"] == (today - date.fromisoformat(due)).days
    assert by_id[not_due_yet]["days_overdue"] < 0
    assert datetime.fromisoformat(
        by_id[brought_forward]["last_visit_at"]
    ) == datetime.fromisoformat(latest["visited_at"])
    assert all(item["area_code"] == "240101" for item in items)

    # An officer of the district sees the same list; one of another district sees none of it.
    officer = logbook_as("district_officer", "2401")
    assert (await officer.get(f"/v1/teams/{team}/worklist")).json() == items
    stranger = logbook_as("district_officer", "2402")
    assert (await stranger.get(f"/v1/teams/{team}/worklist")).json() == []
    limited = (await mentor.get(f"/v1/teams/{team}/worklist", params={"limit": 3})).json()
    assert [item["household_id"] for item in limited] == ids[:3]


async def test_a_mentor_reads_only_its_own_teams_worklist(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    other_team = await organization(admin)
    await _team_household(admin, logbook_settings, team)

    other_mentor = logbook_as("mentor", "240101", UUID(other_team))
    refused = await other_mentor.get(f"/v1/teams/{team}/worklist")
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await other_mentor.get(f"/v1/teams/{other_team}/worklist")).json() == []
    own = await logbook_as("mentor", "240101", UUID(team)).get(f"/v1/teams/{team}/worklist")
    assert own.status_code == 200 and len(own.json()) == 1


async def test_open_interventions_and_problems_no_live_intervention_addresses(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await _team_household(admin, logbook_settings, team)
    mentor = logbook_as("mentor", "240101", UUID(team))

    # An earlier visit's problem that the latest visit no longer finds is not listed.
    await _visit(
        mentor,
        household_id,
        "2026-10-01T09:00:00+07:00",
        "2026-10-30",
        problems=[{"dimension": "living", "indicator": "2560-09", "note": "น้ำดื่มไม่พอ"}],
    )
    problems = [
        {"dimension": "income", "indicator": "2560-20", "note": "ไม่มีงานประจำ"},
        {"dimension": "health", "indicator": "2560-04", "note": "อาหารไม่สะอาด"},
        {"dimension": "living", "indicator": "2560-08", "note": "บ้านทรุดโทรม"},
        {"dimension": "education", "indicator": "2560-16", "note": "ลูกไม่ได้ไปโรงเรียน"},
        {"dimension": "public_access", "indicator": "2560-27", "note": "ผู้สูงอายุอยู่ลำพัง"},
    ]
    visit = await _visit(
        mentor, household_id, "2026-11-10T09:00:00+07:00", "2026-12-10", problems=problems
    )

    async def record(**fields: Any) -> dict[str, Any]:
        response = await mentor.post("/v1/interventions", json=intervention(household_id, **fields))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    planned_income = await record()
    cancelled_health = await record(dimension="health", menu_code="HLT-04")
    assert (
        await mentor.post(
            f"/v1/interventions/{cancelled_health['id']}/status", json={"status": "cancelled"}
        )
    ).status_code == 200
    corrected_living = await record(dimension="living", menu_code="LIV-01")
    correction = await mentor.post(
        f"/v1/interventions/{corrected_living['id']}/corrections",
        json={"dimension": "education", "menu_code": "EDU-03", "reason": "บันทึกผิดมิติ"},
    )
    assert correction.status_code == 201, correction.text
    education = correction.json()
    started_education = await mentor.post(
        f"/v1/interventions/{education['id']}/status", json={"status": "in_progress"}
    )
    assert started_education.status_code == 200
    await record(dimension="public_access", menu_code="PUB-01", status="completed")

    (item,) = (await mentor.get(f"/v1/teams/{team}/worklist")).json()
    open_ = {i["id"]: i for i in item["open_interventions"]}
    assert set(open_) == {planned_income["id"], education["id"]}
    assert open_[planned_income["id"]]["status"] == "planned"
    assert open_[education["id"]]["status"] == "in_progress"
    assert open_[education["id"]]["supersedes"] == corrected_living["id"]

    # Health: its only intervention was cancelled. Living: its intervention was corrected into
    # an education one. Income, education and public access have a live intervention.
    unaddressed = item["unaddressed_problems"]
    assert [(p["dimension"], p["indicator"], p["note"]) for p in unaddressed] == [
        ("health", "2560-04", "อาหารไม่สะอาด"),
        ("living", "2560-08", "บ้านทรุดโทรม"),
    ]
    assert all(
        datetime.fromisoformat(p["found_at"]) == datetime.fromisoformat(visit["visited_at"])
        for p in unaddressed
    )
