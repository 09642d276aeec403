"""Members and persons: adding, reading, changing, unique citizen IDs, lookups and the PDPA log."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx

from services.registry.settings import RegistrySettings
from shared.thai import format_citizen_id, mask_citizen_id
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import (
    assert_problem,
    citizen_id,
    counts,
    error_fields,
    household,
    person,
    register,
    wrong_check_digit,
)


def born(years_ago: int, days: int = 0) -> str:
    today = date.today()
    return (
        today.replace(year=today.year - years_ago, day=min(today.day, 28)) - timedelta(days=days)
    ).isoformat()


async def pii_log(settings: RegistrySettings) -> list[dict[str, Any]]:
    rows = await registry_rows(
        settings,
        """
        SELECT subject, role, action, person_id::text AS person_id, reason, at
        FROM pii_access ORDER BY id""",
    )
    return [dict(r) for r in rows]


async def test_adds_a_member_to_a_household(admin: httpx.AsyncClient) -> None:
    created = await register(admin, members=[person("สมศรี", "มีสุข", relation="head")])
    digits = citizen_id()
    response = await admin.post(
        f"/v1/households/{created['id']}/members",
        json=person(
            "สมหมาย",
            "มีสุข",
            title="นาย",
            citizen_id=digits,
            sex="male",
            birth_date=born(70),
            relation="father",
            disability=True,
        ),
    )
    assert response.status_code == 201, response.text
    member = response.json()
    assert response.headers["location"] == f"/v1/persons/{member['id']}"
    assert response.headers["etag"] == '"1"'
    assert member["household_id"] == created["id"]
    assert member["citizen_id"] == digits
    assert member["life_stage"] == "elderly"
    assert member["disability"] is True
    assert member["welfare_card"] is False

    members = (await admin.get(f"/v1/households/{created['id']}/members")).json()
    assert [m["first_name"] for m in members] == ["สมศรี", "สมหมาย"]
    assert (await admin.get(f"/v1/households/{created['id']}")).json()["member_count"] == 2
    fetched = await admin.get(f"/v1/persons/{member['id']}")
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == member


async def test_the_life_stage_follows_the_age(admin: httpx.AsyncClient) -> None:
    ages = [
        (0, 30, "early_childhood"),
        (5, 0, "early_childhood"),
        (6, 0, "school_age"),
        (14, 0, "school_age"),
        (15, 0, "working_age"),
        (59, 0, "working_age"),
        (60, 0, "elderly"),
        (95, 0, "elderly"),
    ]
    created = await register(
        admin,
        members=[
            person(str(n), "ทดสอบ", birth_date=born(age, days))
            for n, (age, days, _) in enumerate(ages)
        ]
        + [person("ไม่ทราบ", "วันเกิด")],
    )
    stages = {m["first_name"]: m["life_stage"] for m in created["members"]}
    assert stages == {**{str(n): stage for n, (_, _, stage) in enumerate(ages)}, "ไม่ทราบ": None}


async def test_a_birth_date_in_the_future_is_unprocessable(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin)
    before = await counts(registry_settings)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    problem = assert_problem(
        await admin.post(
            f"/v1/households/{created['id']}/members", json=person(birth_date=tomorrow)
        ),
        422,
    )
    assert error_fields(problem) == {"birth_date"}
    assert await counts(registry_settings) == before


async def test_changes_a_person_with_if_match(admin: httpx.AsyncClient) -> None:
    created = await register(admin, members=[person("ประยูร", "ดีมาก", birth_date=born(30))])
    url = f"/v1/persons/{created['members'][0]['id']}"
    assert_problem(await admin.patch(url, json={"relation": "head"}), 428)
    assert_problem(
        await admin.patch(url, json={"relation": "head"}, headers={"If-Match": '"7"'}), 412
    )
    response = await admin.patch(
        url,
        headers={"If-Match": '"1"'},
        json={"relation": "head", "welfare_card": True, "birth_date": born(61)},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert (body["relation"], body["welfare_card"], body["life_stage"]) == ("head", True, "elderly")
    assert (await admin.get(url)).json() == body
    assert_problem(await admin.patch(url, json={"relation": "x"}, headers={"If-Match": '"1"'}), 412)
    problem = assert_problem(
        await admin.patch(url, json={"first_name": None}, headers={"If-Match": '"2"'}), 422
    )
    assert error_fields(problem) == {"first_name"}


async def test_a_citizen_id_is_unique_across_the_country(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    await register(admin, "250101", members=[person(citizen_id=digits)])
    here = await register(admin, "240101")
    before = await counts(registry_settings)

    added = await admin.post(
        f"/v1/households/{here['id']}/members", json=person(citizen_id=format_citizen_id(digits))
    )
    assert_problem(added, 409, "conflict")
    registered = await admin.post(
        "/v1/households",
        json=household("240102", members=[person("ก", "ข"), person(citizen_id=digits)]),
    )
    assert_problem(registered, 409, "conflict")

    assert await counts(registry_settings) == before
    (row,) = await registry_rows(
        registry_settings, "SELECT count(*) AS n FROM person WHERE household_id = $1", here["id"]
    )
    assert row["n"] == 0


async def test_the_same_citizen_id_twice_in_one_registration_is_a_conflict(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    before = await counts(registry_settings)
    response = await admin.post(
        "/v1/households",
        json=household(
            members=[person(citizen_id=digits), person(citizen_id=format_citizen_id(digits))]
        ),
    )
    assert_problem(response, 409, "conflict")
    assert await counts(registry_settings) == before


async def test_changing_a_citizen_id_to_one_taken_is_a_conflict(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    taken = citizen_id()
    created = await register(admin, members=[person(citizen_id=taken), person("ข", "ค")])
    other = next(m for m in created["members"] if m["citizen_id"] is None)
    before = await counts(registry_settings)
    response = await admin.patch(
        f"/v1/persons/{other['id']}", json={"citizen_id": taken}, headers={"If-Match": '"1"'}
    )
    assert_problem(response, 409, "conflict")
    assert await counts(registry_settings) == before
    same = await admin.patch(
        f"/v1/persons/{created['members'][0]['id']}",
        json={"citizen_id": format_citizen_id(taken)},
        headers={"If-Match": '"1"'},
    )
    assert same.status_code == 200, same.text
    assert same.headers["etag"] == '"1"'


async def test_a_citizen_id_with_a_wrong_check_digit_is_a_422_with_field_errors(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    created = await register(admin, members=[person("มี", "บัตร", citizen_id=citizen_id())])
    before = await counts(registry_settings)

    for value in (
        wrong_check_digit(digits),
        digits[:12],
        "1234567890ABC",
        "0" + digits[1:],
        digits + "0",
        1234567890123,
    ):
        registered = await admin.post(
            "/v1/households", json=household(members=[person("ก", "ข"), person(citizen_id=value)])
        )
        problem = assert_problem(registered, 422, "validation-error")
        assert error_fields(problem) == {"members.1.citizen_id"}, value
        assert all(e["message"] for e in problem["errors"])
        added = await admin.post(
            f"/v1/households/{created['id']}/members", json=person(citizen_id=value)
        )
        assert error_fields(assert_problem(added, 422)) == {"citizen_id"}, value
        changed = await admin.patch(
            f"/v1/persons/{created['members'][0]['id']}",
            json={"citizen_id": value},
            headers={"If-Match": '"1"'},
        )
        assert error_fields(assert_problem(changed, 422)) == {"citizen_id"}, value
        lookup = await admin.post(
            "/v1/persons/lookup", json={"citizen_id": value, "reason": "checking a claim"}
        )
        assert error_fields(assert_problem(lookup, 422)) == {"citizen_id"}, value

    assert await counts(registry_settings) == before


# Lookup by citizen ID


async def test_a_lookup_finds_a_person_inside_the_callers_area_and_is_logged(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    created = await register(admin, "240101", members=[person("บุญชู", "ศรีสุข", citizen_id=digits)])
    officer = as_caller("district_officer", "2401", subject="officer-7")
    response = await officer.post(
        "/v1/persons/lookup",
        json={"citizen_id": format_citizen_id(digits), "reason": "checking a welfare claim"},
    )
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["id"] == created["members"][0]["id"]
    assert found["citizen_id"] == digits
    assert found["first_name"] == "บุญชู"

    log = [e for e in await pii_log(registry_settings) if e["action"] == "lookup"]
    assert len(log) == 1
    assert log[0]["subject"] == "officer-7"
    assert log[0]["role"] == "district_officer"
    assert log[0]["reason"] == "checking a welfare claim"
    assert log[0]["person_id"] == found["id"]
    assert log[0]["at"] is not None


async def test_a_mentor_lookup_answers_a_masked_citizen_id(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    digits = citizen_id()
    await register(admin, members=[person(citizen_id=digits)])
    response = await as_caller("mentor", "240101").post(
        "/v1/persons/lookup", json={"citizen_id": digits, "reason": "visit preparation"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["citizen_id"] == mask_citizen_id(digits)


async def test_a_lookup_outside_the_callers_area_is_a_404_and_still_logged(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    elsewhere, nowhere = citizen_id(), citizen_id()
    await register(admin, "240201", members=[person(citizen_id=elsewhere)])
    officer = as_caller("district_officer", "2401", subject="officer-8")

    outside = await officer.post(
        "/v1/persons/lookup", json={"citizen_id": elsewhere, "reason": "neighbour asked"}
    )
    missing = await officer.post(
        "/v1/persons/lookup", json={"citizen_id": nowhere, "reason": "typo check"}
    )
    first, second = assert_problem(outside, 404, "not-found"), assert_problem(missing, 404)
    assert first == second

    log = [e for e in await pii_log(registry_settings) if e["action"] == "lookup"]
    assert [(e["subject"], e["reason"], e["person_id"]) for e in log] == [
        ("officer-8", "neighbour asked", None),
        ("officer-8", "typo check", None),
    ]


async def test_a_lookup_needs_a_reason(
    admin: httpx.AsyncClient, registry_settings: RegistrySettings
) -> None:
    before = await counts(registry_settings)
    for body in ({"citizen_id": citizen_id()}, {"citizen_id": citizen_id(), "reason": " "}):
        problem = assert_problem(await admin.post("/v1/persons/lookup", json=body), 422)
        assert error_fields(problem) == {"reason"}
    assert await counts(registry_settings) == before


async def test_officers_reading_unmasked_citizen_ids_are_logged_with_their_reason(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin, members=[person(citizen_id=citizen_id()), person("ก", "ข")])
    with_id, without_id = created["members"][0]["id"], created["members"][1]["id"]
    officer = as_caller("subdistrict_team", "240101", subject="team-9")
    reason = {"X-Access-Reason": "preparing the visit"}
    await registry_rows(registry_settings, "DELETE FROM pii_access")

    assert (await officer.get(f"/v1/households/{created['id']}", headers=reason)).status_code == 200
    assert (await officer.get(f"/v1/households/{created['id']}/members")).status_code == 200
    assert (await officer.get(f"/v1/persons/{with_id}", headers=reason)).status_code == 200

    log = await pii_log(registry_settings)
    assert [(e["action"], e["person_id"], e["reason"]) for e in log] == [
        ("read_unmasked", with_id, "preparing the visit"),
        ("read", without_id, "preparing the visit"),
        ("read_unmasked", with_id, None),
        ("read", without_id, None),
        ("read_unmasked", with_id, "preparing the visit"),
    ]
    assert {(e["subject"], e["role"]) for e in log} == {("team-9", "subdistrict_team")}


async def test_reading_the_audit_trail_logs_a_read_of_each_member_on_the_page(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin, members=[person("ก", "ข"), person("ค", "ง")])
    first, second = (m["id"] for m in created["members"])
    officer = as_caller("subdistrict_team", "240101", subject="team-4")
    await registry_rows(registry_settings, "DELETE FROM pii_access")

    # The household's creation, then one entry per member: names and birth dates in each.
    page = await officer.get(
        f"/v1/households/{created['id']}/audit",
        params={"limit": 2},
        headers={"X-Access-Reason": "checking a correction"},
    )
    assert page.status_code == 200, page.text
    assert [e["entity_id"] for e in page.json()["items"]][1:] == [first]
    rest = await officer.get(
        f"/v1/households/{created['id']}/audit", params={"cursor": page.json()["next_cursor"]}
    )
    assert [e["entity_id"] for e in rest.json()["items"]] == [second]

    log = await pii_log(registry_settings)
    assert [(e["subject"], e["action"], e["person_id"], e["reason"]) for e in log] == [
        ("team-4", "read", first, "checking a correction"),
        ("team-4", "read", second, None),
    ]


async def test_masked_reads_of_personal_data_are_logged_too(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin, members=[person(citizen_id=citizen_id())])
    await registry_rows(registry_settings, "DELETE FROM pii_access")
    mentor = as_caller("mentor", "240101", subject="mentor-3")
    assert (await mentor.get(f"/v1/persons/{created['members'][0]['id']}")).status_code == 200
    log = await pii_log(registry_settings)
    assert [(e["subject"], e["action"], e["person_id"]) for e in log] == [
        ("mentor-3", "read", created["members"][0]["id"])
    ]


async def test_a_missing_person_is_a_404(admin: httpx.AsyncClient) -> None:
    missing = "01a22545-0000-7000-8000-000000000001"
    assert_problem(await admin.get(f"/v1/persons/{missing}"), 404, "not-found")
    assert_problem(
        await admin.patch(
            f"/v1/persons/{missing}", json={"title": "นาย"}, headers={"If-Match": '"1"'}
        ),
        404,
    )
    assert_problem(await admin.get(f"/v1/households/{missing}/members"), 404)
    assert_problem(await admin.post(f"/v1/households/{missing}/members", json=person()), 404)


async def test_two_registrations_racing_for_one_citizen_id_make_one_person_and_one_409(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    first, second = await asyncio.gather(
        *(
            admin.post("/v1/households", json=household(members=[person(citizen_id=digits)]))
            for _ in range(2)
        )
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    assert_problem(first if first.status_code == 409 else second, 409, "conflict")
    (row,) = await registry_rows(registry_settings, "SELECT count(*) AS n FROM person")
    assert row["n"] == 1
    (row,) = await registry_rows(registry_settings, "SELECT count(*) AS n FROM household")
    assert row["n"] == 1


async def test_a_citizen_id_entered_by_mistake_can_be_removed_and_given_to_its_owner(
    admin: httpx.AsyncClient,
) -> None:
    digits = citizen_id()
    created = await register(admin, members=[person("ผิดคน", "ผิดบ้าน", citizen_id=digits)])
    wrong = created["members"][0]
    removed = await admin.patch(
        f"/v1/persons/{wrong['id']}", json={"citizen_id": None}, headers={"If-Match": '"1"'}
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["citizen_id"] is None
    assert removed.headers["etag"] == '"2"'
    owner = await admin.post(
        f"/v1/households/{created['id']}/members", json=person("ถูกคน", "ถูกบ้าน", citizen_id=digits)
    )
    assert owner.status_code == 201, owner.text
    trail = (await admin.get(f"/v1/households/{created['id']}/audit")).json()["items"]
    removal = next(e for e in trail if e["action"] == "member_updated")
    assert removal["changes"] == {"citizen_id": [mask_citizen_id(digits), None]}


async def test_a_reason_written_in_thai_is_logged_as_written(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin, members=[person(citizen_id=citizen_id())])
    officer = as_caller("subdistrict_team", "240101")
    await registry_rows(registry_settings, "DELETE FROM pii_access")
    reason = "เตรียมลงพื้นที่เยี่ยมบ้าน"
    response = await officer.get(
        f"/v1/persons/{created['members'][0]['id']}",
        headers={"X-Access-Reason": reason.encode("utf-8")},
    )
    assert response.status_code == 200, response.text
    assert [e["reason"] for e in await pii_log(registry_settings)] == [reason]
