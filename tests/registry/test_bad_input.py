"""Bad input gets a clear 4xx problem, never a 500, and leaves the database as it was."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.registry.settings import RegistrySettings
from tests.registry.support import (
    assert_problem,
    counts,
    error_fields,
    household,
    person,
    register,
)

MIB = 1024 * 1024
NUL_CODE = base64.urlsafe_b64encode(b'{"code":"\\u0000","id":"\\u0000"}').decode()


@pytest.fixture
async def before(registry_settings: RegistrySettings) -> dict[str, int]:
    return await counts(registry_settings)


async def test_malformed_json_is_a_422_problem(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    for raw in (b'{"area_code": "240101",', b"{bad", b"", b"\xff\xfe{}", b'{"area_code": 240101'):
        response = await admin.post(
            "/v1/households", content=raw, headers={"content-type": "application/json"}
        )
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"], raw
    assert await counts(registry_settings) == before


WRONG_FIELDS: list[tuple[Any, str]] = [
    ({"area_code": "240101", "survey_year": "two thousand"}, "survey_year"),
    ({"area_code": "240101", "survey_year": 1999}, "survey_year"),
    ({"area_code": "240101", "members": "นายสมชาย"}, "members"),
    ({"area_code": "240101", "members": [{"first_name": "ก"}]}, "members.0.last_name"),
    ({"area_code": "240101", "members": [person(sex="other")]}, "members.0.sex"),
    ({"area_code": "240101", "members": [person(birth_date="31/12/2500")]}, "members.0.birth_date"),
    ({"area_code": "240101", "members": [person(disability="maybe")]}, "members.0.disability"),
    ({"area_code": "240101", "failed_indicators": "2560-04"}, "failed_indicators"),
    ({"area_code": "240101", "failed_indicators": [4]}, "failed_indicators.0"),
    (
        {"area_code": "240101", "failed_indicators": ["2560-04; DROP TABLE household"]},
        "failed_indicators.0",
    ),
    ({"area_code": "240101", "location": {"lat": 51.5, "lon": -0.12}}, "location.lat"),
    ({"area_code": "240101", "location": {"lat": 13.7}}, "location.lon"),
    ({"area_code": "240101", "house_code": "2401"}, "house_code"),
    ({"area_code": 240101}, "area_code"),
    ({"area_code": "24-01-01"}, "area_code"),
    ({}, "area_code"),
]


async def test_a_field_of_the_wrong_type_or_shape_is_named_in_a_422(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    for body, field in WRONG_FIELDS:
        problem = assert_problem(
            await admin.post("/v1/households", json=body), 422, "validation-error"
        )
        assert field in error_fields(problem), (body, problem)
    assert await counts(registry_settings) == before


async def test_a_body_that_is_not_an_object_is_a_422(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    for body in ([], "240101", 42, None, [household()]):
        assert_problem(await admin.post("/v1/households", json=body), 422)
    assert await counts(registry_settings) == before


async def test_an_unknown_area_code_is_a_422(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    problem = assert_problem(await admin.post("/v1/households", json=household("24019999")), 422)
    assert error_fields(problem) == {"area_code"}
    assert "24019999" in problem["detail"]
    assert await counts(registry_settings) == before


async def test_an_unknown_indicator_code_is_a_422(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    response = await admin.post(
        "/v1/households", json=household(failed_indicators=["2560-04", "2560-99", "2555-01"])
    )
    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == {"failed_indicators"}
    assert "2560-99" in problem["detail"] and "2555-01" in problem["detail"]
    assert "2560-04" not in problem["detail"]
    assert await counts(registry_settings) == before


UNKNOWN_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/households", household(is_poor=True), "is_poor"),
    ("/v1/households", household(members=[person(citizen_number="1")]), "members.0.citizen_number"),
    ("/v1/households", household(status="graduated"), "status"),
    ("/v1/areas", {"code": "24010120", "name_th": "หมู่ 20", "level": "village"}, "level"),
    (
        "/v1/organizations",
        {"kind": "agency", "name": "x", "area_code": "TH", "budget": 1},
        "budget",
    ),
    ("/v1/persons/lookup", {"citizen_id": "1101700203451", "reason": "x" * 5, "why": "y"}, "why"),
]


async def test_an_unknown_field_is_refused_not_ignored(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    for path, body, field in UNKNOWN_FIELDS:
        problem = assert_problem(await admin.post(path, json=body), 422)
        assert field in error_fields(problem), (path, body, problem)
    assert await counts(registry_settings) == before


async def test_an_unknown_field_in_a_change_is_refused(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin, members=[person()])
    before = await counts(registry_settings)
    for path, body, field in (
        (f"/v1/households/{created['id']}", {"status": "graduated"}, "status"),
        (f"/v1/households/{created['id']}", {"mentor_team_id": None}, "mentor_team_id"),
        (f"/v1/persons/{created['members'][0]['id']}", {"life_stage": "elderly"}, "life_stage"),
    ):
        problem = assert_problem(
            await admin.patch(path, json=body, headers={"If-Match": '"1"'}), 422
        )
        assert field in error_fields(problem)
    assert await counts(registry_settings) == before


async def test_an_oversized_body_is_a_413_problem(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    body = ('{"area_code": "240101", "address": "' + "ก" * MIB + '"}').encode()
    assert len(body) > MIB
    problem = assert_problem(
        await admin.post(
            "/v1/households", content=body, headers={"content-type": "application/json"}
        ),
        413,
        "payload-too-large",
    )
    assert problem["detail"]
    assert await counts(registry_settings) == before


async def test_an_oversized_body_without_a_declared_length_is_a_413_problem(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"area_code": "240101", "address": "'
        for _ in range(20):
            yield b"x" * (128 * 1024)
        yield b'"}'

    response = await admin.post(
        "/v1/households", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")
    assert await counts(registry_settings) == before


async def test_a_body_just_under_the_limit_is_read(admin: httpx.AsyncClient) -> None:
    members = [person("ก" * 200, "ข" * 200, relation="ค" * 50) for _ in range(50)]
    body = household(address="ง" * 500, members=members)
    response = await admin.post("/v1/households", json=body)
    assert response.status_code == 201, response.text


async def test_text_with_a_nul_character_is_a_422_not_a_database_error(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    for body, field in (
        (household(address="12\u0000 หมู่ 1"), "address"),
        (household(members=[person("สม\u0000ชาย")]), "members.0.first_name"),
        ({"code": "24010120", "name_th": "หมู่\u0000"}, "name_th"),
    ):
        path = "/v1/areas" if "code" in body else "/v1/households"
        assert field in error_fields(assert_problem(await admin.post(path, json=body), 422))
    problem = assert_problem(await admin.get("/v1/households", params={"q": "สม\u0000ชาย"}), 422)
    assert error_fields(problem) == {"query.q"}
    assert await counts(registry_settings) == before


BAD_QUERIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/households", {"limit": 0}, "query.limit"),
    ("/v1/households", {"limit": 501}, "query.limit"),
    ("/v1/households", {"limit": "ten"}, "query.limit"),
    ("/v1/households", {"status": "rich"}, "query.status"),
    ("/v1/households", {"area_code": "24x"}, "query.area_code"),
    ("/v1/households", {"team_id": "team-1"}, "query.team_id"),
    ("/v1/households", {"q": "ก"}, "query.q"),
    ("/v1/areas", {"level": "city"}, "query.level"),
    ("/v1/organizations", {"area_code": "2401011"}, "query.area_code"),
]


async def test_bad_query_parameters_are_named_in_a_422(admin: httpx.AsyncClient) -> None:
    for path, params, field in BAD_QUERIES:
        problem = assert_problem(await admin.get(path, params=params), 422)
        assert field in error_fields(problem), (path, params, problem)


async def test_a_cursor_from_another_list_or_forged_is_a_400(admin: httpx.AsyncClient) -> None:
    area_cursor = (await admin.get("/v1/areas", params={"limit": 1})).json()["next_cursor"]
    for path in (
        "/v1/areas",
        "/v1/households",
        "/v1/organizations",
        "/v1/organizations/01a22545-0000-7000-8000-000000000000/members",
    ):
        for cursor in ("eyJpZCI6IjEifQ", "eyJ4IjoxfQ", "bnVsbA", "%%%", area_cursor, NUL_CODE):
            if path == "/v1/areas" and cursor == area_cursor:
                continue
            response = await admin.get(path, params={"cursor": cursor})
            assert_problem(response, 400, "bad-request")


async def test_an_id_that_is_not_a_uuid_is_a_422(admin: httpx.AsyncClient) -> None:
    for path in ("/v1/households/42", "/v1/persons/abc", "/v1/organizations/x/members"):
        problem = assert_problem(await admin.get(path), 422)
        assert any(f.startswith("path.") for f in error_fields(problem))


async def test_a_form_body_instead_of_json_is_a_4xx_problem(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    before: dict[str, int],
) -> None:
    response = await admin.post("/v1/households", data={"area_code": "240101"})
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert await counts(registry_settings) == before
