"""The logbook end to end: a household registered in the registry, visited, helped."""

from __future__ import annotations

from uuid import UUID

import httpx

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, eventually
from tests.logbook.support import VISIT, household, organization, wait_known


async def test_a_mentor_visits_and_helps_its_own_household(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)

    mentor = logbook_as("mentor", "240101", UUID(team))
    visit = await mentor.post(f"/v1/households/{household_id}/visits", json=VISIT)
    assert visit.status_code == 201, visit.text
    assert visit.json()["team_id"] == team

    worklist = (await mentor.get(f"/v1/teams/{team}/worklist")).json()
    assert worklist[0]["household_id"] == household_id
    assert worklist[0]["unaddressed_problems"][0]["dimension"] == "income"

    planned = await mentor.post(
        "/v1/interventions",
        json={
            "household_id": household_id,
            "dimension": "income",
            "menu_code": "INC-02",
            "description": "ฝึกอาชีพทำขนม",
            "amount_thb": "1500.00",
        },
    )
    assert planned.status_code == 201, planned.text
    intervention = planned.json()
    assert intervention["status"] == "planned" and intervention["amount_thb"] == "1500.00"

    started = await mentor.post(
        f"/v1/interventions/{intervention['id']}/status",
        json={"status": "in_progress", "note": "เริ่มอบรม"},
    )
    done = await mentor.post(
        f"/v1/interventions/{intervention['id']}/status", json={"status": "completed"}
    )
    assert started.status_code == done.status_code == 200, done.text
    assert [h["to_status"] for h in done.json()["history"]] == [
        "planned",
        "in_progress",
        "completed",
    ]

    back = await mentor.post(
        f"/v1/interventions/{intervention['id']}/status", json={"status": "planned"}
    )
    assert back.status_code == 409

    worklist = (await mentor.get(f"/v1/teams/{team}/worklist")).json()
    assert worklist[0]["unaddressed_problems"] == []

    timeline = (await mentor.get(f"/v1/households/{household_id}/logbook")).json()
    kinds = [entry["kind"] for entry in timeline]
    assert kinds.count("visit") == 1 and kinds.count("intervention") == 1
    assert kinds.count("intervention_status") == 2
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)


async def test_the_first_visit_moves_the_household_to_in_progress_in_the_registry(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id)
    officer = logbook_as("district_officer", "2401")
    assert (
        await officer.post(f"/v1/households/{household_id}/visits", json=VISIT)
    ).status_code == 201

    async def in_progress() -> bool:
        body = (await admin.get(f"/v1/households/{household_id}")).json()
        return bool(body["status"] == "in_progress")

    await eventually(in_progress)
    history = (await admin.get(f"/v1/households/{household_id}/status-history")).json()
    assert [(h["to_status"], h["changed_by"]) for h in history][-1] == (
        "in_progress",
        "service:logbook",
    )
    # The registry's change comes back to the logbook and stands in the timeline.
    await eventually(lambda: _timeline_has_status(officer, household_id))


async def _timeline_has_status(client: httpx.AsyncClient, household_id: str) -> bool:
    timeline = (await client.get(f"/v1/households/{household_id}/logbook")).json()
    return any(e["kind"] == "household_status" and "in_progress" in e["summary"] for e in timeline)
