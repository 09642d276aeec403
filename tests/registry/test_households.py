"""Households: registration, reading, listing with filters and search, pages, changes, audit."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from services.registry.settings import RegistrySettings
from shared.thai import format_citizen_id, mask_citizen_id
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import (
    assert_problem,
    citizen_id,
    counts,
    create_organization,
    error_fields,
    household,
    ids,
    person,
    register,
)

OFFICERS = [
    ("national_admin", "TH"),
    ("province_officer", "24"),
    ("district_officer", "2401"),
    ("subdistrict_team", "240101"),
]


def years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


async def test_registers_a_target_household_with_its_members(
    as_caller: ClientFactory,
) -> None:
    officer = as_caller("district_officer", "2401")
    head, child = citizen_id(), citizen_id()
    response = await officer.post(
        "/v1/households",
        json=household(
            "240101",
            house_code="24010000123",
            address="12/3 หมู่ 3 ตำบลหน้าเมือง",
            location={"lat": 13.69, "lon": 101.07},
            failed_indicators=["2560-20", "2560-04", "2560-09", "2560-04"],
            members=[
                person(
                    "สมชาย",
                    "ใจดี",
                    title="นาย",
                    citizen_id=head,
                    sex="male",
                    birth_date=years_ago(40),
                    relation="head",
                    welfare_card=True,
                ),
                person(
                    "ด.ญ.มะลิ",
                    "ใจดี",
                    citizen_id=child,
                    sex="female",
                    birth_date=years_ago(8),
                    relation="daughter",
                ),
            ],
        ),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/households/{body['id']}"
    assert response.headers["x-request-id"]
    assert body["status"] == "target"
    assert body["area_code"] == "240101"
    assert body["house_code"] == "24010000123"
    assert body["address"] == "12/3 หมู่ 3 ตำบลหน้าเมือง"
    assert body["location"] == {"lat": 13.69, "lon": 101.07}
    assert body["survey_year"] == 2566
    assert body["failed_indicators"] == ["2560-04", "2560-09", "2560-20"]
    assert body["dimensions"] == ["health", "living", "income"]
    assert body["mentor_team_id"] is None
    assert body["member_count"] == 2
    members = {m["first_name"]: m for m in body["members"]}
    assert members["สมชาย"]["citizen_id"] == head
    assert members["สมชาย"]["title"] == "นาย"
    assert members["สมชาย"]["life_stage"] == "working_age"
    assert members["สมชาย"]["welfare_card"] is True
    assert members["ด.ญ.มะลิ"]["life_stage"] == "school_age"
    assert all(m["household_id"] == body["id"] for m in body["members"])
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None

    again = await officer.get(response.headers["location"])
    assert again.status_code == 200
    assert again.headers["etag"] == '"1"'
    assert again.json() == body


async def test_a_household_may_lie_in_a_village_or_a_subdistrict_only(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    assert (
        await admin.post("/v1/areas", json={"code": "24010101", "name_th": "หมู่ที่ 1"})
    ).status_code == 201
    assert (await register(admin, "24010101"))["area_code"] == "24010101"
    before = await counts(registry_settings)
    for code in ("TH", "24", "2401"):
        problem = assert_problem(await admin.post("/v1/households", json=household(code)), 422)
        assert error_fields(problem) == {"area_code"}
    assert await counts(registry_settings) == before


async def test_thai_text_round_trips_exactly(admin: httpx.AsyncClient) -> None:
    address = "๑๒/๓ หมู่ที่ ๓ ซอยวัดโสธรวรารามวรวิหาร ถนนมรุพงษ์ ตำบลหน้าเมือง"
    name = "ณัฐพงศ์ศักดิ์ฐ์"
    created = await register(admin, address=address, members=[person(name, "ศรีสุวรรณ์")])
    fetched = (await admin.get(f"/v1/households/{created['id']}")).json()
    assert fetched["address"] == address
    assert fetched["members"][0]["first_name"] == name


async def test_citizen_ids_are_masked_for_roles_that_do_not_act_on_them(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    digits = "1234567890121"
    created = await register(admin, members=[person(citizen_id=digits)])
    for role, area in (("mentor", "240101"), ("system", "TH")):
        client = as_caller(role, area)
        shown = (await client.get(f"/v1/households/{created['id']}")).json()["members"][0]
        assert shown["citizen_id"] == "1-2345-xxxxx-xx-1" == mask_citizen_id(digits)
        members = (await client.get(f"/v1/households/{created['id']}/members")).json()
        assert members[0]["citizen_id"] == "1-2345-xxxxx-xx-1"
        one = (await client.get(f"/v1/persons/{shown['id']}")).json()
        assert one["citizen_id"] == "1-2345-xxxxx-xx-1"


async def test_officers_see_citizen_ids_unmasked(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    digits = citizen_id()
    created = await register(admin, members=[person(citizen_id=format_citizen_id(digits))])
    for role, area in OFFICERS:
        shown = (await as_caller(role, area).get(f"/v1/households/{created['id']}")).json()
        assert shown["members"][0]["citizen_id"] == digits, role


async def test_a_missing_household_is_a_404_problem(admin: httpx.AsyncClient) -> None:
    missing = "01a22545-0000-7000-8000-000000000000"
    problem = assert_problem(await admin.get(f"/v1/households/{missing}"), 404, "not-found")
    assert missing in problem["detail"]


async def test_a_house_code_belongs_to_one_household(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    await register(admin, house_code="24010000001")
    before = await counts(registry_settings)
    assert_problem(
        await admin.post("/v1/households", json=household("240102", house_code="24010000001")),
        409,
        "conflict",
    )
    assert await counts(registry_settings) == before


# Listing


async def test_lists_households_by_area_code_prefix(as_caller: ClientFactory) -> None:
    admin = as_caller()
    in_240101 = await register(admin, "240101")
    in_240102 = await register(admin, "240102")
    in_240201 = await register(admin, "240201")
    in_250101 = await register(admin, "250101")

    async def listed(**params: Any) -> set[Any]:
        response = await admin.get("/v1/households", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    assert await listed(area_code="2401") == ids([in_240101, in_240102])
    assert await listed(area_code="240102") == ids([in_240102])
    assert await listed(area_code="24") == ids([in_240101, in_240102, in_240201])
    assert await listed(area_code="TH") == ids([in_240101, in_240102, in_240201, in_250101])
    assert await listed() == ids([in_240101, in_240102, in_240201, in_250101])
    assert await listed(area_code="2403") == set()


async def test_lists_households_by_status(as_caller: ClientFactory) -> None:
    officer = as_caller("district_officer", "2401")
    first = await register(officer)
    second = await register(officer)
    moved = await officer.post(
        f"/v1/households/{second['id']}/status", json={"status": "in_progress"}
    )
    assert moved.status_code == 201, moved.text
    target = (await officer.get("/v1/households", params={"status": "target"})).json()
    working = (await officer.get("/v1/households", params={"status": "in_progress"})).json()
    assert ids(target["items"]) == ids([first])
    assert ids(working["items"]) == ids([second])
    assert working["items"][0]["status"] == "in_progress"


async def test_lists_households_failing_an_indicator_of_a_dimension(
    admin: httpx.AsyncClient,
) -> None:
    health = await register(admin, failed_indicators=["2560-01", "2560-05"])
    income_and_living = await register(admin, failed_indicators=["2560-22", "2560-08"])
    elderly_care = await register(admin, failed_indicators=["2560-27"])

    async def failing(dimension: str) -> set[Any]:
        response = await admin.get("/v1/households", params={"dimension": dimension})
        return ids(response.json()["items"])

    assert await failing("health") == ids([health])
    assert await failing("income") == ids([income_and_living])
    assert await failing("living") == ids([income_and_living])
    assert await failing("public_access") == ids([elderly_care])
    assert await failing("education") == set()
    assert_problem(await admin.get("/v1/households", params={"dimension": "wealth"}), 422)


async def test_lists_households_of_a_mentor_team(admin: httpx.AsyncClient) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    other_team = await create_organization(admin, "mentor_team", "240101")
    assigned = await register(admin)
    await register(admin)
    response = await admin.put(
        f"/v1/households/{assigned['id']}/mentor-team", json={"team_id": team["id"]}
    )
    assert response.status_code == 200, response.text
    listed = (await admin.get("/v1/households", params={"team_id": team["id"]})).json()
    assert ids(listed["items"]) == ids([assigned])
    assert listed["items"][0]["mentor_team_id"] == team["id"]
    other = (await admin.get("/v1/households", params={"team_id": other_team["id"]})).json()
    assert other["items"] == []


async def test_a_list_by_team_looks_in_the_teams_sub_district_within_the_asked_area(
    admin: httpx.AsyncClient,
) -> None:
    """A team's households are all in its sub-district: the list by team is that sub-district
    within the asked area (and the caller's scope); beside it, or for an id that is no mentor
    team, nothing."""
    team = await create_organization(admin, "mentor_team", "240101")
    agency = await create_organization(admin, "agency", "2401", ministry="มหาดไทย")
    assigned = await register(admin)
    response = await admin.put(
        f"/v1/households/{assigned['id']}/mentor-team", json={"team_id": team["id"]}
    )
    assert response.status_code == 200, response.text

    async def listed(team_id: str, **params: str) -> set[str]:
        response = await admin.get("/v1/households", params={"team_id": team_id, **params})
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    for area in ("TH", "24", "2401", "240101"):
        assert await listed(team["id"], area_code=area) == ids([assigned]), area
    assert await listed(team["id"], area_code="2402") == set()
    assert await listed(team["id"], area_code="240102") == set()
    assert await listed(agency["id"]) == set()
    assert await listed("0195c1d2-0000-7000-8000-000000000000") == set()


async def test_a_team_or_status_change_rewrites_the_household_in_place(
    admin: httpx.AsyncClient, registry_settings: RegistrySettings
) -> None:
    """No index covers the columns an assignment or a status change sets, and pages keep room:
    PostgreSQL writes the new row version beside the old one and touches no index (a
    heap-only update), about a tenth of the cost at national size."""
    team = await create_organization(admin, "mentor_team", "240101")
    household_id = (await register(admin))["id"]
    dsn = registry_settings.database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE household SET mentor_team_id = $1, version = version + 1,"
                " updated_at = now() WHERE id = $2",
                UUID(team["id"]),
                UUID(household_id),
            )
            await conn.execute(
                "UPDATE household SET status = 'in_progress', version = version + 1,"
                " updated_at = now() WHERE id = $1",
                UUID(household_id),
            )
            in_place = await conn.fetchval(
                "SELECT pg_stat_get_xact_tuples_hot_updated('household'::regclass)"
            )
            assert in_place == 2
    finally:
        await conn.close()


async def test_search_finds_households_by_thai_name_and_by_address(
    admin: httpx.AsyncClient,
) -> None:
    somchai = await register(
        admin,
        address="45 หมู่ 2 บ้านคลองบางพระ",
        members=[person("สมชาย", "ใจดี"), person("มาลี", "ใจดี")],
    )
    wichai = await register(admin, address="7 หมู่ 5 บ้านดอนทอง", members=[person("วิชัย", "รักษ์ไทย")])

    async def found(q: str) -> set[Any]:
        response = await admin.get("/v1/households", params={"q": q})
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    assert await found("สมชาย") == ids([somchai])
    assert await found("มาลี ใจดี") == ids([somchai])
    assert await found("รักษ์ไทย") == ids([wichai])
    assert await found("บ้านดอนทอง") == ids([wichai])
    assert await found("คลองบางพระ") == ids([somchai])
    assert await found("สุดารัตน์") == set()


async def test_search_follows_a_member_renamed_later(admin: httpx.AsyncClient) -> None:
    created = await register(admin, members=[person("บุญมี", "ทองคำ")])
    person_id = created["members"][0]["id"]
    renamed = await admin.patch(
        f"/v1/persons/{person_id}", json={"last_name": "เงินทอง"}, headers={"If-Match": '"1"'}
    )
    assert renamed.status_code == 200, renamed.text
    found = (await admin.get("/v1/households", params={"q": "เงินทอง"})).json()["items"]
    assert ids(found) == ids([created])
    assert (await admin.get("/v1/households", params={"q": "ทองคำ"})).json()["items"] == []


async def test_pages_through_households_with_a_cursor(admin: httpx.AsyncClient) -> None:
    registered = [await register(admin) for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = []
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await admin.get("/v1/households", params=params)).json()
        pages.append(len(body["items"]))
        seen += [h["id"] for h in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"
    assert pages == [2, 2, 1]
    assert len(seen) == len(set(seen))
    assert set(seen) == {h["id"] for h in registered}


async def test_the_last_full_page_has_no_next_cursor(admin: httpx.AsyncClient) -> None:
    for _ in range(2):
        await register(admin)
    body = (await admin.get("/v1/households", params={"limit": 2})).json()
    assert len(body["items"]) == 2
    assert body["next_cursor"] is None


async def test_a_forged_cursor_is_a_400_problem(admin: httpx.AsyncClient) -> None:
    for cursor in ("not-a-cursor!!", "eyJjb2RlIjoiMjQifQ", "WzFd"):
        assert_problem(await admin.get("/v1/households", params={"cursor": cursor}), 400)


# Changing details


async def test_a_change_without_if_match_is_refused_with_428(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin)
    before = await counts(registry_settings)
    response = await admin.patch(f"/v1/households/{created['id']}", json={"address": "ใหม่"})
    assert_problem(response, 428, "precondition-required")
    assert await counts(registry_settings) == before
    assert (await admin.get(f"/v1/households/{created['id']}")).json()["address"] == "99 หมู่ 1"


async def test_a_change_against_a_stale_etag_is_refused_with_412(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    first, second = as_caller("district_officer", "2401"), as_caller("province_officer", "24")
    created = await register(first)
    etag = (await first.get(f"/v1/households/{created['id']}")).headers["etag"]
    ok = await second.patch(
        f"/v1/households/{created['id']}", json={"address": "ของคนที่สอง"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 200, ok.text
    before = await counts(registry_settings)
    stale = await first.patch(
        f"/v1/households/{created['id']}", json={"address": "ของคนแรก"}, headers={"If-Match": etag}
    )
    assert_problem(stale, 412, "precondition-failed")
    assert await counts(registry_settings) == before
    after = (await first.get(f"/v1/households/{created['id']}")).json()
    assert after["address"] == "ของคนที่สอง"


async def test_a_change_with_the_current_etag_answers_the_new_etag(
    admin: httpx.AsyncClient,
) -> None:
    created = await register(admin)
    response = await admin.patch(
        f"/v1/households/{created['id']}",
        headers={"If-Match": '"1"'},
        json={
            "address": "88 หมู่ 4",
            "survey_year": 2567,
            "location": {"lat": 13.7, "lon": 101.1},
            "failed_indicators": ["2560-16"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["address"] == "88 หมู่ 4"
    assert body["survey_year"] == 2567
    assert body["location"] == {"lat": 13.7, "lon": 101.1}
    assert body["failed_indicators"] == ["2560-16"]
    assert body["dimensions"] == ["education"]
    fetched = await admin.get(f"/v1/households/{created['id']}")
    assert fetched.headers["etag"] == '"2"'
    assert fetched.json() == body
    weak = await admin.patch(
        f"/v1/households/{created['id']}", headers={"If-Match": 'W/"2"'}, json={"location": None}
    )
    assert weak.status_code == 200, weak.text
    assert weak.json()["location"] is None
    assert weak.headers["etag"] == '"3"'


async def test_a_change_to_an_unknown_area_or_indicator_writes_nothing(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin)
    before = await counts(registry_settings)
    for change, field in (
        ({"area_code": "240199"}, "area_code"),
        ({"failed_indicators": ["2560-99"]}, "failed_indicators"),
        ({"area_code": None}, "area_code"),
        ({"house_code": "123"}, "house_code"),
    ):
        response = await admin.patch(
            f"/v1/households/{created['id']}", json=change, headers={"If-Match": '"1"'}
        )
        assert field in error_fields(assert_problem(response, 422)), change
    assert await counts(registry_settings) == before


async def test_moving_a_household_away_from_its_mentor_teams_subdistrict_is_a_conflict(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    created = await register(admin, "240101")
    assigned = await admin.put(
        f"/v1/households/{created['id']}/mentor-team", json={"team_id": team["id"]}
    )
    etag = assigned.headers["etag"]
    before = await counts(registry_settings)
    response = await admin.patch(
        f"/v1/households/{created['id']}", json={"area_code": "240102"}, headers={"If-Match": etag}
    )
    assert_problem(response, 409, "conflict")
    assert await counts(registry_settings) == before
    unassigned = await admin.put(
        f"/v1/households/{created['id']}/mentor-team",
        json={"team_id": None},
        headers={"If-Match": etag},
    )
    assert unassigned.status_code == 200, unassigned.text
    moved = await admin.patch(
        f"/v1/households/{created['id']}",
        json={"area_code": "240102"},
        headers={"If-Match": unassigned.headers["etag"]},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["area_code"] == "240102"


# Audit trail


async def test_the_audit_trail_shows_old_and_new_values_who_and_when(
    as_caller: ClientFactory,
) -> None:
    registrar = as_caller("district_officer", "2401", subject="officer-somsri")
    editor = as_caller("subdistrict_team", "240101", subject="team-anan")
    started = datetime.now().astimezone()
    created = await register(
        registrar, address="1 หมู่ 1", failed_indicators=["2560-20", "2560-04", "2560-20"]
    )
    changed = await editor.patch(
        f"/v1/households/{created['id']}",
        headers={"If-Match": '"1"'},
        json={
            "address": "2 หมู่ 1",
            "failed_indicators": ["2560-10"],
            "location": {"lat": 13.7, "lon": 101.1},
            "survey_year": 2566,
        },
    )
    assert changed.status_code == 200, changed.text

    response = await registrar.get(f"/v1/households/{created['id']}/audit")
    assert response.status_code == 200, response.text
    entries = response.json()["items"]
    assert [e["action"] for e in entries] == ["created", "updated"]
    creation, update = entries
    assert creation["actor"] == "officer-somsri"
    assert creation["changes"]["address"] == [None, "1 หมู่ 1"]
    assert creation["changes"]["failed_indicators"] == [None, ["2560-04", "2560-20"]]
    assert update["actor"] == "team-anan"
    assert update["entity"] == "household"
    assert update["entity_id"] == created["id"]
    assert update["changes"] == {
        "address": ["1 หมู่ 1", "2 หมู่ 1"],
        "failed_indicators": [["2560-04", "2560-20"], ["2560-10"]],
        "location": [None, {"lat": 13.7, "lon": 101.1}],
    }
    for entry in entries:
        at = datetime.fromisoformat(entry["at"])
        assert started - timedelta(seconds=5) <= at <= datetime.now().astimezone()


async def test_the_audit_trail_records_members_and_pages(admin: httpx.AsyncClient) -> None:
    created = await register(admin, members=[person("ก", "ข"), person("ค", "ง")])
    added = await admin.post(f"/v1/households/{created['id']}/members", json=person("จ", "ฉ"))
    assert added.status_code == 201
    first = (await admin.get(f"/v1/households/{created['id']}/audit", params={"limit": 3})).json()
    assert len(first["items"]) == 3
    assert first["next_cursor"]
    rest = (
        await admin.get(
            f"/v1/households/{created['id']}/audit",
            params={"limit": 3, "cursor": first["next_cursor"]},
        )
    ).json()
    assert rest["next_cursor"] is None
    entries = first["items"] + rest["items"]
    assert [e["action"] for e in entries] == [
        "created",
        "member_added",
        "member_added",
        "member_added",
    ]
    assert {e["entity_id"] for e in entries if e["entity"] == "person"} == {
        *(m["id"] for m in created["members"]),
        added.json()["id"],
    }


async def test_the_audit_trail_never_holds_a_plain_citizen_id(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    first, second = citizen_id(), citizen_id()
    created = await register(admin, members=[person(citizen_id=first)])
    person_id = created["members"][0]["id"]
    changed = await admin.patch(
        f"/v1/persons/{person_id}", json={"citizen_id": second}, headers={"If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text

    entries = (await admin.get(f"/v1/households/{created['id']}/audit")).json()["items"]
    update = next(e for e in entries if e["action"] == "member_updated")
    assert update["changes"]["citizen_id"] == [mask_citizen_id(first), mask_citizen_id(second)]
    stored = await registry_rows(registry_settings, "SELECT changes::text AS c FROM audit_entry")
    for text in [json.dumps(entries, ensure_ascii=False), *(r["c"] for r in stored)]:
        for digits in (first, second):
            assert digits not in text
            assert format_citizen_id(digits) not in text
            assert digits[1:12] not in text


async def test_two_officers_changing_at_once_cannot_both_win(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    first, second = as_caller("district_officer", "2401"), as_caller("subdistrict_team", "240101")
    created = await register(first)
    url = f"/v1/households/{created['id']}"
    answers = await asyncio.gather(
        first.patch(url, json={"address": "ของคนแรก"}, headers={"If-Match": '"1"'}),
        second.patch(url, json={"address": "ของคนที่สอง"}, headers={"If-Match": '"1"'}),
    )
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200)
    assert (await first.get(url)).json()["address"] == winner.json()["address"]
    updates = await registry_rows(
        registry_settings, "SELECT count(*) AS n FROM audit_entry WHERE action = 'updated'"
    )
    assert updates[0]["n"] == 1


async def test_two_registrations_racing_for_one_house_code_make_one_household(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    answers = await asyncio.gather(
        *(admin.post("/v1/households", json=household(house_code="24010000999")) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    (row,) = await registry_rows(registry_settings, "SELECT count(*) AS n FROM household")
    assert row["n"] == 1
