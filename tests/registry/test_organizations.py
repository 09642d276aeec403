"""Operation centres, agencies, sub-district and mentor teams, their members and assignments."""

from __future__ import annotations

from typing import Any

import httpx

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import (
    assert_problem,
    counts,
    create_organization,
    error_fields,
    ids,
    register,
)


async def add_village(admin: httpx.AsyncClient, code: str) -> None:
    response = await admin.post("/v1/areas", json={"code": code, "name_th": f"หมู่ที่ {code[-2:]}"})
    assert response.status_code == 201, response.text


VALID_LEVELS: list[tuple[str, str, dict[str, Any]]] = [
    ("operation_center", "TH", {}),
    ("operation_center", "24", {}),
    ("operation_center", "2401", {}),
    ("agency", "TH", {"ministry": "กระทรวงการพัฒนาสังคมและความมั่นคงของมนุษย์"}),
    ("agency", "24", {"ministry": "กระทรวงมหาดไทย"}),
    ("agency", "240101", {}),
    ("subdistrict_team", "240101", {}),
    ("mentor_team", "240101", {}),
    ("mentor_team", "24010101", {}),
]


async def test_creates_each_kind_of_organization_at_the_levels_it_works_at(
    admin: httpx.AsyncClient,
) -> None:
    await add_village(admin, "24010101")
    for kind, area_code, extra in VALID_LEVELS:
        response = await admin.post(
            "/v1/organizations",
            json={"kind": kind, "name": "ศจพ. ทดสอบ", "area_code": area_code, **extra},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/organizations/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert (body["kind"], body["area_code"], body["name"]) == (kind, area_code, "ศจพ. ทดสอบ")
        assert body["ministry"] == extra.get("ministry")
        fetched = await admin.get(f"/v1/organizations/{body['id']}")
        assert fetched.json() == body
        assert fetched.headers["etag"] == '"1"'


async def test_an_organization_at_the_wrong_level_is_unprocessable(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    await add_village(admin, "24010101")
    before = await counts(registry_settings)
    for kind, area_code in (
        ("operation_center", "240101"),
        ("agency", "24010101"),
        ("subdistrict_team", "TH"),
        ("subdistrict_team", "2401"),
        ("mentor_team", "24"),
        ("mentor_team", "2401"),
    ):
        response = await admin.post(
            "/v1/organizations", json={"kind": kind, "name": "ผิดระดับ", "area_code": area_code}
        )
        problem = assert_problem(response, 422, "validation-error")
        assert error_fields(problem) == {"area_code"}, (kind, area_code)
    assert await counts(registry_settings) == before


async def test_organization_input_is_checked(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    cases = [
        ({"kind": "mentor_team", "name": "x", "area_code": "240199"}, {"area_code"}),
        ({"kind": "mentor_team", "name": "x", "area_code": "24x"}, {"area_code"}),
        ({"kind": "club", "name": "x", "area_code": "24"}, {"kind"}),
        (
            {"kind": "operation_center", "name": "x", "area_code": "24", "ministry": "มท."},
            {"ministry"},
        ),
        ({"kind": "operation_center", "name": " ", "area_code": "24"}, {"name"}),
        ({"kind": "operation_center", "area_code": "24"}, {"name"}),
        (
            {
                "kind": "mentor_team",
                "name": "x",
                "area_code": "240101",
                "parent_id": "01a22545-0000-7000-8000-000000000000",
            },
            {"parent_id"},
        ),
    ]
    for body, fields in cases:
        response = await admin.post("/v1/organizations", json=body)
        assert error_fields(assert_problem(response, 422)) == fields, body
    assert await counts(registry_settings) == before


async def test_an_officer_creates_organizations_only_inside_its_area(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    district = as_caller("district_officer", "2401")
    team = await create_organization(district, "mentor_team", "240101")
    assert team["area_code"] == "240101"
    before = await counts(registry_settings)
    for area in ("240201", "24", "TH"):
        response = await district.post(
            "/v1/organizations", json={"kind": "agency", "name": "นอกพื้นที่", "area_code": area}
        )
        assert_problem(response, 403, "not-permitted")
    for role in ("mentor", "analyst"):
        response = await as_caller(role, "2401").post(
            "/v1/organizations", json={"kind": "mentor_team", "name": "ทีม", "area_code": "240101"}
        )
        assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before


async def test_lists_organizations_by_kind_and_area(admin: httpx.AsyncClient) -> None:
    national = await create_organization(admin, "operation_center", "TH")
    province = await create_organization(admin, "operation_center", "24", parent_id=national["id"])
    team_a = await create_organization(admin, "mentor_team", "240101")
    team_b = await create_organization(admin, "mentor_team", "240201")
    subdistrict_team = await create_organization(admin, "subdistrict_team", "240101")

    async def listed(**params: Any) -> set[Any]:
        response = await admin.get("/v1/organizations", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    assert await listed(kind="mentor_team") == ids([team_a, team_b])
    assert await listed(kind="operation_center") == ids([national, province])
    assert await listed(area_code="2401") == ids([team_a, subdistrict_team])
    assert await listed(area_code="240101", kind="mentor_team") == ids([team_a])
    assert await listed(area_code="24") == ids([province, team_a, team_b, subdistrict_team])
    assert await listed() == ids([national, province, team_a, team_b, subdistrict_team])
    assert_problem(await admin.get("/v1/organizations", params={"kind": "club"}), 422)


async def test_pages_through_organizations(admin: httpx.AsyncClient) -> None:
    made = [await create_organization(admin, "mentor_team", "240101", f"ทีม {n}") for n in range(5)]
    first = (await admin.get("/v1/organizations", params={"limit": 3})).json()
    rest = (
        await admin.get("/v1/organizations", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()
    assert rest["next_cursor"] is None
    seen = [o["id"] for o in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(o["id"] for o in made)


async def test_a_district_officer_sees_its_centres_and_national_agencies_not_other_provinces(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    dsw = await create_organization(admin, "agency", "TH", ministry="พม.")
    national = await create_organization(admin, "operation_center", "TH")
    province = await create_organization(admin, "operation_center", "24")
    district = await create_organization(admin, "operation_center", "2401")
    own_team = await create_organization(admin, "mentor_team", "240101")
    neighbour_centre = await create_organization(admin, "operation_center", "2402")
    neighbour_team = await create_organization(admin, "mentor_team", "240201")
    other_province = await create_organization(admin, "operation_center", "25")
    other_team = await create_organization(admin, "mentor_team", "250101")

    officer = as_caller("district_officer", "2401")
    listed = (await officer.get("/v1/organizations")).json()["items"]
    assert ids(listed) == ids([dsw, national, province, district, own_team])
    narrowed = (await officer.get("/v1/organizations", params={"area_code": "24"})).json()
    assert ids(narrowed["items"]) == ids([province, district, own_team])
    agencies = (await officer.get("/v1/organizations", params={"kind": "agency"})).json()
    assert ids(agencies["items"]) == ids([dsw])
    beside = (await officer.get("/v1/organizations", params={"area_code": "25"})).json()
    assert beside["items"] == []

    for visible in (dsw, province, own_team):
        assert (await officer.get(f"/v1/organizations/{visible['id']}")).status_code == 200
    for hidden in (neighbour_centre, neighbour_team, other_province, other_team):
        assert_problem(await officer.get(f"/v1/organizations/{hidden['id']}"), 404, "not-found")
        assert_problem(await officer.get(f"/v1/organizations/{hidden['id']}/members"), 404)


async def test_changes_an_organization_with_if_match(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    province = await create_organization(admin, "operation_center", "24")
    team = await create_organization(admin, "mentor_team", "240101", "ทีม ๑")
    url = f"/v1/organizations/{team['id']}"
    before = await counts(registry_settings)
    assert_problem(await admin.patch(url, json={"name": "ทีม ๒"}), 428, "precondition-required")
    assert_problem(
        await admin.patch(url, json={"name": "ทีม ๒"}, headers={"If-Match": '"0"'}),
        412,
        "precondition-failed",
    )
    assert await counts(registry_settings) == before

    response = await admin.patch(
        url, json={"name": "ทีม ๒", "parent_id": province["id"]}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert (response.json()["name"], response.json()["parent_id"]) == ("ทีม ๒", province["id"])
    assert (await admin.get(url)).json() == response.json()
    assert_problem(await admin.patch(url, json={"name": "ทีม ๓"}, headers={"If-Match": '"1"'}), 412)
    for change, field in (
        ({"name": None}, "name"),
        ({"ministry": "มท."}, "ministry"),
        ({"kind": "agency"}, "kind"),
    ):
        problem = assert_problem(
            await admin.patch(url, json=change, headers={"If-Match": '"2"'}), 422
        )
        assert error_fields(problem) == {field}


async def test_an_organization_cannot_be_placed_under_itself(admin: httpx.AsyncClient) -> None:
    upper = await create_organization(admin, "operation_center", "24")
    lower = await create_organization(admin, "operation_center", "2401", parent_id=upper["id"])
    for organization, parent in ((upper, upper), (upper, lower)):
        response = await admin.patch(
            f"/v1/organizations/{organization['id']}",
            json={"parent_id": parent["id"]},
            headers={"If-Match": '"1"'},
        )
        assert error_fields(assert_problem(response, 422)) == {"parent_id"}


async def test_a_district_officer_cannot_change_its_province_centre(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    province = await create_organization(admin, "operation_center", "24")
    officer = as_caller("district_officer", "2401")
    assert (await officer.get(f"/v1/organizations/{province['id']}")).status_code == 200
    assert_problem(
        await officer.patch(
            f"/v1/organizations/{province['id']}", json={"name": "x"}, headers={"If-Match": '"1"'}
        ),
        403,
        "not-permitted",
    )
    assert_problem(
        await officer.post(f"/v1/organizations/{province['id']}/members", json={"name": "นายเอ"}),
        403,
        "not-permitted",
    )


# Members


async def test_adds_lists_and_removes_members(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    officer = as_caller("district_officer", "2401")
    team = await create_organization(officer, "mentor_team", "240101")
    url = f"/v1/organizations/{team['id']}/members"
    first = await officer.post(
        url,
        json={
            "name": "นางสาวสุดา ใจงาม",
            "position": "อสม.",
            "phone": "081-234-5678",
            "subject": "suda@moi",
        },
    )
    assert first.status_code == 201, first.text
    member = first.json()
    assert (
        member["organization_id"],
        member["name"],
        member["position"],
        member["phone"],
        member["subject"],
    ) == (team["id"], "นางสาวสุดา ใจงาม", "อสม.", "081-234-5678", "suda@moi")
    second = (await officer.post(url, json={"name": "นายวีระ กล้าหาญ"})).json()

    listed = (await officer.get(url)).json()
    assert [m["id"] for m in listed["items"]] == [member["id"], second["id"]]
    assert listed["next_cursor"] is None
    assert [m["name"] for m in (await as_caller("mentor", "240101").get(url)).json()["items"]] == [
        "นางสาวสุดา ใจงาม",
        "นายวีระ กล้าหาญ",
    ]

    removed = await officer.delete(f"{url}/{member['id']}")
    assert removed.status_code == 204, removed.text
    assert removed.headers["x-request-id"]
    assert [m["id"] for m in (await officer.get(url)).json()["items"]] == [second["id"]]
    assert_problem(await officer.delete(f"{url}/{member['id']}"), 404, "not-found")
    (row,) = await registry_rows(registry_settings, "SELECT count(*) AS n FROM member")
    assert row["n"] == 1


async def test_member_input_is_checked_and_personal(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    url = f"/v1/organizations/{team['id']}/members"
    before = await counts(registry_settings)
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "ก", "phone": "call me"}, "phone"),
        ({"name": "ก", "role": "boss"}, "role"),
    ):
        assert error_fields(assert_problem(await admin.post(url, json=body), 422)) == {field}
    assert_problem(await as_caller("analyst", "TH").get(url), 403, "not-permitted")
    assert_problem(await as_caller("mentor", "240101").post(url, json={"name": "ก"}), 403)
    assert await counts(registry_settings) == before


async def test_a_member_of_another_organization_cannot_be_removed_through_this_one(
    admin: httpx.AsyncClient,
) -> None:
    team_a = await create_organization(admin, "mentor_team", "240101")
    team_b = await create_organization(admin, "mentor_team", "240101")
    member = (
        await admin.post(f"/v1/organizations/{team_a['id']}/members", json={"name": "ก"})
    ).json()
    response = await admin.delete(f"/v1/organizations/{team_b['id']}/members/{member['id']}")
    assert_problem(response, 404)
    listed = (await admin.get(f"/v1/organizations/{team_a['id']}/members")).json()["items"]
    assert [m["id"] for m in listed] == [member["id"]]


# Assigning households to mentor teams


async def test_assigns_a_household_to_a_mentor_team_of_its_subdistrict(
    admin: httpx.AsyncClient,
) -> None:
    await add_village(admin, "24010103")
    team = await create_organization(admin, "mentor_team", "240101")
    village_team = await create_organization(admin, "mentor_team", "24010103")
    household = await register(admin, "240101")
    url = f"/v1/households/{household['id']}/mentor-team"

    response = await admin.put(url, json={"team_id": team["id"]})
    assert response.status_code == 200, response.text
    assert response.json()["mentor_team_id"] == team["id"]
    assert response.headers["etag"] == '"2"'
    moved = await admin.put(url, json={"team_id": village_team["id"]}, headers={"If-Match": '"2"'})
    assert moved.status_code == 200, moved.text
    assert moved.json()["mentor_team_id"] == village_team["id"]
    assert_problem(
        await admin.put(url, json={"team_id": team["id"]}, headers={"If-Match": '"2"'}), 412
    )
    fetched = (await admin.get(f"/v1/households/{household['id']}")).json()
    assert fetched["mentor_team_id"] == village_team["id"]

    trail = (await admin.get(f"/v1/households/{household['id']}/audit")).json()["items"]
    assignments = [e["changes"]["mentor_team_id"] for e in trail if e["action"] == "assigned"]
    assert assignments == [[None, team["id"]], [team["id"], village_team["id"]]]

    cleared = await admin.put(url, json={"team_id": None})
    assert cleared.status_code == 200
    assert cleared.json()["mentor_team_id"] is None


async def test_a_household_goes_only_to_a_mentor_team_of_its_own_subdistrict(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    household = await register(admin, "240101")
    elsewhere = await create_organization(admin, "mentor_team", "240102")
    not_a_mentor_team = await create_organization(admin, "subdistrict_team", "240101")
    url = f"/v1/households/{household['id']}/mentor-team"
    before = await counts(registry_settings)
    for team_id in (
        elsewhere["id"],
        not_a_mentor_team["id"],
        "01a22545-0000-7000-8000-000000000000",
    ):
        problem = assert_problem(await admin.put(url, json={"team_id": team_id}), 422)
        assert error_fields(problem) == {"team_id"}
    assert error_fields(assert_problem(await admin.put(url, json={}), 422)) == {"team_id"}
    assert await counts(registry_settings) == before


async def test_only_officers_assign_mentor_teams(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    household = await register(admin)
    before = await counts(registry_settings)
    for role, area in (("mentor", "240101"), ("analyst", "TH")):
        response = await as_caller(role, area, team_id=team["id"]).put(
            f"/v1/households/{household['id']}/mentor-team", json={"team_id": team["id"]}
        )
        assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before
