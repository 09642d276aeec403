"""A household's life cycle: target → in_progress → graduated, the exits, and who may move it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory
from tests.registry.support import assert_problem, counts, error_fields, register

EXITS = ["moved", "deceased", "refused", "duplicate"]


async def move(
    client: httpx.AsyncClient, household: dict[str, Any], status: str, reason: str | None = None
) -> httpx.Response:
    body = {"status": status, **({"reason": reason} if reason is not None else {})}
    return await client.post(f"/v1/households/{household['id']}/status", json=body)


async def moved_to(
    client: httpx.AsyncClient, household: dict[str, Any], status: str, reason: str | None = None
) -> dict[str, Any]:
    response = await move(client, household, status, reason)
    assert response.status_code == 201, response.text
    change: dict[str, Any] = response.json()
    return change


async def status_of(client: httpx.AsyncClient, household: dict[str, Any]) -> str:
    status: str = (await client.get(f"/v1/households/{household['id']}")).json()["status"]
    return status


async def test_a_household_goes_from_target_to_in_progress_to_graduated(
    as_caller: ClientFactory,
) -> None:
    officer = as_caller("district_officer", "2401", subject="officer-1")
    household = await register(officer)
    change = await moved_to(officer, household, "in_progress", "first visit on 3 June")
    assert change["from_status"] == "target"
    assert change["to_status"] == "in_progress"
    assert change["household_id"] == household["id"]
    assert change["changed_by"] == "officer-1"
    assert await status_of(officer, household) == "in_progress"
    await moved_to(officer, household, "graduated", "follow-up visit: no indicator failing")
    assert await status_of(officer, household) == "graduated"


async def test_a_graduated_household_can_fall_back_into_progress(
    admin: httpx.AsyncClient,
) -> None:
    household = await register(admin)
    await moved_to(admin, household, "in_progress")
    await moved_to(admin, household, "graduated", "no indicator failing")
    await moved_to(admin, household, "in_progress", "lost the job again")
    assert await status_of(admin, household) == "in_progress"


async def test_a_household_that_refused_may_be_taken_up_again(admin: httpx.AsyncClient) -> None:
    household = await register(admin)
    await moved_to(admin, household, "refused", "does not want visits")
    await moved_to(admin, household, "in_progress", "agreed at the second try")
    assert await status_of(admin, household) == "in_progress"


async def test_a_household_may_leave_the_list_from_target_or_in_progress(
    admin: httpx.AsyncClient,
) -> None:
    for start in ("target", "in_progress"):
        for exit_status in EXITS:
            household = await register(admin)
            if start == "in_progress":
                await moved_to(admin, household, "in_progress")
            change = await moved_to(admin, household, exit_status, "recorded by the team")
            assert (change["from_status"], change["to_status"]) == (start, exit_status)
            assert await status_of(admin, household) == exit_status


NOT_ALLOWED = [
    ([], "graduated"),
    ([], "target"),
    (["in_progress"], "target"),
    (["in_progress"], "in_progress"),
    (["in_progress", "graduated"], "moved"),
    (["moved"], "in_progress"),
    (["deceased"], "in_progress"),
    (["duplicate"], "target"),
    (["refused"], "graduated"),
]


async def test_a_transition_that_is_not_allowed_is_a_409_and_changes_nothing(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    for path, to in NOT_ALLOWED:
        household = await register(admin)
        for status in path:
            await moved_to(admin, household, status, "because")
        before = await counts(registry_settings)
        problem = assert_problem(
            await move(admin, household, to, "because"), 409, "invalid-transition"
        )
        assert to in problem["detail"]
        assert await counts(registry_settings) == before, (path, to)
        assert await status_of(admin, household) == (path[-1] if path else "target")


async def test_district_officers_and_above_confirm_graduation(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    for role, area in (
        ("district_officer", "2401"),
        ("province_officer", "24"),
        ("national_admin", "TH"),
    ):
        household = await register(admin)
        await moved_to(admin, household, "in_progress")
        change = await moved_to(
            as_caller(role, area), household, "graduated", "follow-up found no gap"
        )
        assert change["changed_by"] == f"{role}@{area}"


async def test_roles_below_district_cannot_confirm_graduation(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    household = await register(admin)
    await moved_to(admin, household, "in_progress")
    before = await counts(registry_settings)
    for role, area in (("subdistrict_team", "240101"), ("system", "TH")):
        response = await move(as_caller(role, area), household, "graduated", "looks fine")
        assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before
    assert await status_of(admin, household) == "in_progress"


async def test_a_mentor_cannot_confirm_graduation_even_for_its_own_household(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    team = (
        await admin.post(
            "/v1/organizations",
            json={"kind": "mentor_team", "name": "ทีมพี่เลี้ยง 1", "area_code": "240101"},
        )
    ).json()
    household = await register(admin)
    await admin.put(f"/v1/households/{household['id']}/mentor-team", json={"team_id": team["id"]})
    mentor = as_caller("mentor", "240101", team_id=team["id"])
    await moved_to(mentor, household, "in_progress", "first visit")
    assert_problem(await move(mentor, household, "graduated", "all good"), 403)
    assert_problem(await move(mentor, household, "moved", "left the village"), 403)
    assert await status_of(admin, household) == "in_progress"


async def test_graduation_and_exits_need_a_reason(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    household = await register(admin)
    await moved_to(admin, household, "in_progress")
    before = await counts(registry_settings)
    for to in ("graduated", *EXITS):
        for reason in (None, "", "   "):
            problem = assert_problem(
                await move(admin, household, to, reason), 422, "validation-error"
            )
            assert error_fields(problem) == {"reason"}, (to, reason)
    assert await counts(registry_settings) == before
    assert await status_of(admin, household) == "in_progress"


async def test_an_unknown_status_is_unprocessable(admin: httpx.AsyncClient) -> None:
    household = await register(admin)
    problem = assert_problem(await move(admin, household, "rich", "won the lottery"), 422)
    assert error_fields(problem) == {"status"}


async def test_the_status_history_lists_who_when_and_why(as_caller: ClientFactory) -> None:
    registrar = as_caller("subdistrict_team", "240101", subject="team-240101")
    district = as_caller("district_officer", "2401", subject="district-2401")
    started = datetime.now().astimezone()
    household = await register(registrar)
    await moved_to(registrar, household, "in_progress", "first visit")
    await moved_to(district, household, "graduated", "follow-up: nothing failing")

    response = await registrar.get(f"/v1/households/{household['id']}/status-history")
    assert response.status_code == 200, response.text
    history = response.json()
    assert [(h["from_status"], h["to_status"], h["changed_by"], h["reason"]) for h in history] == [
        (None, "target", "team-240101", "registered"),
        ("target", "in_progress", "team-240101", "first visit"),
        ("in_progress", "graduated", "district-2401", "follow-up: nothing failing"),
    ]
    times = [datetime.fromisoformat(h["changed_at"]) for h in history]
    assert times == sorted(times)
    assert started - timedelta(seconds=5) <= times[0]
    assert times[-1] <= datetime.now().astimezone()


async def test_a_status_change_is_in_the_audit_trail_and_moves_the_etag(
    admin: httpx.AsyncClient,
) -> None:
    household = await register(admin)
    await moved_to(admin, household, "refused", "not at home, three times")
    current = await admin.get(f"/v1/households/{household['id']}")
    assert current.headers["etag"] == '"2"'
    stale = await admin.patch(
        f"/v1/households/{household['id']}", json={"address": "x"}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    entries = (await admin.get(f"/v1/households/{household['id']}/audit")).json()["items"]
    change = entries[-1]
    assert change["action"] == "status_changed"
    assert change["changes"]["status"] == ["target", "refused"]
