"""The demo province's whole journey through the gateway alone, with bearer tokens only."""

from __future__ import annotations

from shared.auth import Role
from tests.conftest import eventually
from tests.gateway.conftest import Gateway
from tests.logbook.support import VISIT, intervention
from tests.registry.support import household

CHACHOENGSAO, MUEANG = "24", "2401"


async def test_a_household_goes_from_target_to_graduated_and_progress_shows_it(
    gateway: Gateway,
) -> None:
    province = gateway.as_(Role.province_officer, CHACHOENGSAO)
    team = await province.post(
        "/v1/organizations",
        json={"kind": "mentor_team", "name": "ทีมพี่เลี้ยงหน้าเมือง 1", "area_code": "240101"},
    )
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]

    district = gateway.as_(Role.district_officer, MUEANG)
    registered = await district.post("/v1/households", json=household("240101"))
    assert registered.status_code == 201, registered.text
    household_id = registered.json()["id"]
    assert registered.json()["status"] == "target"
    assigned = await district.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": team_id}
    )
    assert assigned.status_code == 200, assigned.text

    mentor = gateway.as_(Role.mentor, "240101", team_id, subject="mentor-somsri")

    async def on_worklist() -> bool:
        worklist = await mentor.get(f"/v1/teams/{team_id}/worklist")
        return worklist.status_code == 200 and any(
            item["household_id"] == household_id for item in worklist.json()
        )

    await eventually(on_worklist, what="the household on its mentor team's worklist")
    visit = await mentor.post(f"/v1/households/{household_id}/visits", json=VISIT)
    assert visit.status_code == 201, visit.text
    given = []
    for fields in ({"amount_thb": "600.00", "menu_code": "INC-01"}, {"amount_thb": "1200.50"}):
        planned = await mentor.post("/v1/interventions", json=intervention(household_id, **fields))
        assert planned.status_code == 201, planned.text
        given.append(planned.json()["id"])
    completed = await mentor.post(
        f"/v1/interventions/{given[0]}/status",
        json={"status": "completed", "note": "ได้รับเงินอุดหนุนแล้ว"},
    )
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"

    async def in_progress() -> bool:
        read = await district.get(f"/v1/households/{household_id}")
        return bool(read.json()["status"] == "in_progress")

    await eventually(in_progress, what="the registry moves the visited household on")
    graduated = await district.post(
        f"/v1/households/{household_id}/status",
        json={"status": "graduated", "reason": "ติดตามแล้วไม่พบตัวชี้วัดที่ยังไม่ผ่าน"},
    )
    assert graduated.status_code == 201, graduated.text

    timeline = await mentor.get(f"/v1/households/{household_id}/logbook")
    assert timeline.status_code == 200, timeline.text

    analyst = gateway.as_(Role.analyst, CHACHOENGSAO)

    expected = {
        "target_households": 1,
        "reached_households": 1,
        "graduated_households": 1,
        "graduated_ratio": 1.0,
        "amount_thb": "600.00",
        "interventions": {"planned": 1, "in_progress": 0, "completed": 1, "cancelled": 0},
    }

    async def progress_shows_it() -> bool:
        # Analytics follows both streams, each at its own pace.
        answer = await analyst.get(f"/v1/progress/{MUEANG}")
        assert answer.status_code == 200, answer.text
        return {k: answer.json()[k] for k in expected} == expected

    await eventually(progress_shows_it, what=f"progress of {MUEANG} shows the journey")
