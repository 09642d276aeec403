"""Areas (country to village) and the basic-minimum-needs indicators."""

from __future__ import annotations

import httpx

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory
from tests.registry.support import assert_problem, counts, error_fields

CHACHOENGSAO_SUBDISTRICTS = 93


async def test_lists_the_provinces_of_the_country(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/v1/areas", params={"parent": "TH", "limit": 500})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 77
    assert body["next_cursor"] is None
    assert {a["level"] for a in body["items"]} == {"province"}
    chachoengsao = next(a for a in body["items"] if a["code"] == "24")
    assert chachoengsao == {
        "code": "24",
        "level": "province",
        "name_th": "ฉะเชิงเทรา",
        "name_en": "Chachoengsao",
        "parent_code": "TH",
    }


async def test_lists_areas_by_level_and_parent(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/v1/areas", params={"parent": "2401", "level": "subdistrict"})
    items = response.json()["items"]
    assert items
    assert all(a["parent_code"] == "2401" and a["level"] == "subdistrict" for a in items)
    assert [a["code"] for a in items] == sorted(a["code"] for a in items)
    assert items[0]["code"] == "240101"
    assert items[0]["name_th"] == "หน้าเมือง"


async def test_pages_through_areas_with_a_cursor_without_repeating_any(
    admin: httpx.AsyncClient,
) -> None:
    subdistricts = [
        a["code"]
        for d in range(1, 12)
        for a in (
            await admin.get("/v1/areas", params={"parent": f"24{d:02d}", "limit": 500})
        ).json()["items"]
    ]
    assert len(subdistricts) == CHACHOENGSAO_SUBDISTRICTS

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"level": "subdistrict", "limit": 40}
        response = await admin.get(
            "/v1/areas", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        body = response.json()
        seen += [a["code"] for a in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None or pages == 3:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    assert seen == sorted(seen)


async def test_gets_one_area_with_its_parent(as_caller: ClientFactory) -> None:
    response = await as_caller("mentor", "240101").get("/v1/areas/2401")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "code": "2401",
        "level": "district",
        "name_th": "เมืองฉะเชิงเทรา",
        "name_en": "Mueang Chachoengsao",
        "parent_code": "24",
    }
    assert response.headers["x-request-id"]


async def test_the_whole_country_is_the_area_th(admin: httpx.AsyncClient) -> None:
    body = (await admin.get("/v1/areas/TH")).json()
    assert body["level"] == "country"
    assert body["parent_code"] is None


async def test_an_unknown_area_is_a_404_problem(admin: httpx.AsyncClient) -> None:
    problem = assert_problem(await admin.get("/v1/areas/24019999"), 404, "not-found")
    assert "24019999" in problem["detail"]
    for malformed in ("abc", "%00", "24%0001", "２４"):
        assert_problem(await admin.get(f"/v1/areas/{malformed}"), 404, "not-found")


async def test_areas_are_reference_data_every_role_reads_beyond_its_scope(
    as_caller: ClientFactory,
) -> None:
    for role in ("district_officer", "mentor", "analyst"):
        client = as_caller(role, "2401")
        assert (await client.get("/v1/areas/2501")).status_code == 200, role
        listed = (await client.get("/v1/areas", params={"parent": "25"})).json()["items"]
        assert listed and all(a["code"].startswith("25") for a in listed), role


async def test_province_roles_and_above_add_a_village_under_an_existing_subdistrict(
    as_caller: ClientFactory,
) -> None:
    for role, area, code in (
        ("province_officer", "24", "24010115"),
        ("national_admin", "TH", "24010116"),
    ):
        client = as_caller(role, area)
        response = await client.post(
            "/v1/areas",
            json={"code": code, "name_th": "หมู่ที่ 15 บ้านใหม่พัฒนา", "name_en": "Ban Mai Phatthana"},
        )
        assert response.status_code == 201, response.text
        village = {
            "code": code,
            "level": "village",
            "name_th": "หมู่ที่ 15 บ้านใหม่พัฒนา",
            "name_en": "Ban Mai Phatthana",
            "parent_code": "240101",
        }
        assert response.json() == village
        assert (await client.get(f"/v1/areas/{code}")).json() == village
        children = (await client.get("/v1/areas", params={"parent": "240101"})).json()["items"]
        assert village in children


async def test_roles_below_province_cannot_add_a_village(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    for role in ("district_officer", "subdistrict_team", "mentor", "analyst", "system"):
        response = await as_caller(role, "24").post(
            "/v1/areas", json={"code": "24010115", "name_th": "หมู่ที่ 15"}
        )
        assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before


async def test_adding_a_village_twice_is_a_conflict(admin: httpx.AsyncClient) -> None:
    village = {"code": "24010116", "name_th": "หมู่ที่ 16"}
    assert (await admin.post("/v1/areas", json=village)).status_code == 201
    assert_problem(await admin.post("/v1/areas", json=village), 409, "conflict")


async def test_a_village_under_an_unknown_subdistrict_is_unprocessable(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    problem = assert_problem(
        await admin.post("/v1/areas", json={"code": "24019901", "name_th": "หมู่ที่ 1"}),
        422,
        "validation-error",
    )
    assert "240199" in problem["detail"]
    assert await counts(registry_settings) == before


async def test_a_province_officer_cannot_add_a_village_in_another_province(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    response = await as_caller("province_officer", "24").post(
        "/v1/areas", json={"code": "25010120", "name_th": "หมู่ที่ 20"}
    )
    assert_problem(response, 422)
    assert await counts(registry_settings) == before


async def test_a_village_code_has_eight_digits(admin: httpx.AsyncClient) -> None:
    for code in ("240101", "2401011", "240101AB", "TH", "240101015", "２４０１０１０１"):
        problem = assert_problem(
            await admin.post("/v1/areas", json={"code": code, "name_th": "หมู่ที่ 1"}), 422
        )
        assert error_fields(problem) == {"code"}, code


async def test_lists_the_17_indicators_of_set_2560_with_their_dimensions(
    as_caller: ClientFactory,
) -> None:
    response = await as_caller("analyst", "24").get("/v1/indicators")
    assert response.status_code == 200, response.text
    indicators = response.json()
    assert len(indicators) == 17
    assert {i["set_version"] for i in indicators} == {"2560"}
    by_dimension: dict[str, list[int]] = {}
    for indicator in indicators:
        assert indicator["code"] == f"2560-{indicator['number']:02d}"
        assert indicator["name_th"] and indicator["name_en"]
        by_dimension.setdefault(indicator["dimension"], []).append(indicator["number"])
    assert by_dimension == {
        "health": [1, 4, 5, 7],
        "living": [8, 9, 10, 11],
        "education": [15, 16, 17, 19],
        "income": [20, 21, 22],
        "public_access": [27, 28],
    }
