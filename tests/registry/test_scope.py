"""Who sees and changes what: area scope, roles, mentor teams, and the gateway's identity."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx
import jwt
from fastapi import FastAPI

from services.registry.settings import RegistrySettings
from shared.auth import (
    IDENTITY_HEADER,
    INTERNAL_AUDIENCE,
    INTERNAL_ISSUER,
    Caller,
    Role,
    mint_internal_token,
)
from shared.settings import DEV_INTERNAL_KEY
from tests.conftest import ClientFactory
from tests.registry.support import (
    assert_problem,
    citizen_id,
    counts,
    create_organization,
    household,
    ids,
    person,
    register,
)

MISSING = "01a22545-0000-7000-8000-0000000000ff"


def without_ids(problem: dict[str, Any], *values: str) -> dict[str, Any]:
    """A problem with the ids it names blanked, to compare two answers for what they reveal."""
    text = dict(problem)
    for key in ("detail", "instance"):
        for value in values:
            text[key] = str(text.get(key)).replace(value, "ID")
    return text


async def requests_on(
    client: httpx.AsyncClient, household_id: str, person_id: str
) -> list[httpx.Response]:
    """Every read and change of one household and its member."""
    base = f"/v1/households/{household_id}"
    return [
        await client.get(base),
        await client.get(f"{base}/members"),
        await client.get(f"{base}/audit"),
        await client.get(f"{base}/status-history"),
        await client.patch(base, json={"address": "x"}, headers={"If-Match": '"1"'}),
        await client.post(f"{base}/status", json={"status": "in_progress"}),
        await client.post(f"{base}/members", json=person()),
        await client.put(f"{base}/mentor-team", json={"team_id": None}),
        await client.get(f"/v1/persons/{person_id}"),
        await client.patch(
            f"/v1/persons/{person_id}", json={"title": "นาย"}, headers={"If-Match": '"1"'}
        ),
    ]


async def test_district_officer_cannot_see_or_change_a_household_of_another_district(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    neighbour = await register(admin, "240201", members=[person()])
    before = await counts(registry_settings)
    officer = as_caller("district_officer", "2401")

    hidden = await requests_on(officer, neighbour["id"], neighbour["members"][0]["id"])
    missing = await requests_on(officer, MISSING, MISSING)
    for refused, absent in zip(hidden, missing, strict=True):
        assert_problem(refused, 404, "not-found")
        assert_problem(absent, 404, "not-found")
        assert without_ids(
            refused.json(), neighbour["id"], neighbour["members"][0]["id"]
        ) == without_ids(absent.json(), MISSING)
    assert await counts(registry_settings) == before
    assert (await admin.get(f"/v1/households/{neighbour['id']}")).json() == neighbour


async def test_district_officer_cannot_list_households_of_another_district(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    own = await register(admin, "240101", members=[person("สมปอง", "ทองดี")])
    await register(admin, "240201", members=[person("สมปอง", "ทองดี")])
    await register(admin, "250101")
    officer = as_caller("district_officer", "2401")

    async def listed(**params: Any) -> set[UUID]:
        response = await officer.get("/v1/households", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json()["items"])

    assert await listed() == ids([own])
    assert await listed(area_code="24") == ids([own])
    assert await listed(area_code="TH") == ids([own])
    assert await listed(area_code="2402") == set()
    assert await listed(area_code="240201") == set()
    assert await listed(area_code="25") == set()
    assert await listed(q="ทองดี") == ids([own])


async def test_district_officer_cannot_register_a_household_in_another_district(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    response = await as_caller("district_officer", "2401").post(
        "/v1/households", json=household("240201", members=[person(citizen_id=citizen_id())])
    )
    assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before


async def test_district_officer_cannot_move_a_household_out_of_its_district(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    own = await register(admin, "240101")
    before = await counts(registry_settings)
    response = await as_caller("district_officer", "2401").patch(
        f"/v1/households/{own['id']}", json={"area_code": "240201"}, headers={"If-Match": '"1"'}
    )
    assert_problem(response, 403, "not-permitted")
    assert await counts(registry_settings) == before


async def test_a_subdistrict_team_sees_only_its_subdistrict(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
) -> None:
    own = await register(admin, "240101")
    beside = await register(admin, "240102")
    team = as_caller("subdistrict_team", "240101")
    assert ids((await team.get("/v1/households")).json()["items"]) == ids([own])
    assert_problem(await team.get(f"/v1/households/{beside['id']}"), 404)


async def test_an_analyst_gets_403_on_personal_data(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    digits = citizen_id()
    created = await register(admin, members=[person(citizen_id=digits)])
    person_id = created["members"][0]["id"]
    analyst = as_caller("analyst", "TH")
    before = await counts(registry_settings)

    refused = [
        await analyst.get("/v1/households"),
        await analyst.get(f"/v1/households/{created['id']}"),
        await analyst.get(f"/v1/households/{created['id']}/members"),
        await analyst.get(f"/v1/households/{created['id']}/audit"),
        await analyst.get(f"/v1/households/{created['id']}/status-history"),
        await analyst.get(f"/v1/persons/{person_id}"),
        await analyst.post("/v1/persons/lookup", json={"citizen_id": digits, "reason": "curious"}),
        await analyst.post("/v1/households", json=household()),
        await analyst.post(f"/v1/households/{created['id']}/members", json=person()),
    ]
    for response in refused:
        problem = assert_problem(response, 403, "not-permitted")
        assert digits not in response.text
        assert "analyst" in problem["detail"]
    assert await counts(registry_settings) == before

    assert (await analyst.get("/v1/areas/24")).status_code == 200
    assert (await analyst.get("/v1/indicators")).status_code == 200
    assert (await analyst.get("/v1/organizations")).status_code == 200


async def test_a_mentor_changes_only_its_own_teams_households(
    admin: httpx.AsyncClient,
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    other_team = await create_organization(admin, "mentor_team", "240101")
    own = await register(admin, members=[person()])
    others = await register(admin, members=[person()])
    unassigned = await register(admin, members=[person()])
    for household_, team_ in ((own, team), (others, other_team)):
        assigned = await admin.put(
            f"/v1/households/{household_['id']}/mentor-team", json={"team_id": team_["id"]}
        )
        assert assigned.status_code == 200, assigned.text
    mentor = as_caller("mentor", "240101", team_id=UUID(team["id"]))

    changed = await mentor.patch(
        f"/v1/households/{own['id']}", json={"address": "ตามที่เยี่ยม"}, headers={"If-Match": '"2"'}
    )
    assert changed.status_code == 200, changed.text
    assert (
        await mentor.post(f"/v1/households/{own['id']}/members", json=person("ลูก", "คนเล็ก"))
    ).status_code == 201
    assert (
        await mentor.patch(
            f"/v1/persons/{own['members'][0]['id']}",
            json={"title": "นาง"},
            headers={"If-Match": '"1"'},
        )
    ).status_code == 200
    assert (
        await mentor.post(f"/v1/households/{own['id']}/status", json={"status": "in_progress"})
    ).status_code == 201

    etags = {}
    for not_ours in (others, unassigned):
        seen = await mentor.get(f"/v1/households/{not_ours['id']}")
        assert seen.status_code == 200
        etags[not_ours["id"]] = seen.headers["etag"]
    before = await counts(registry_settings)
    for not_ours in (others, unassigned):
        etag = etags[not_ours["id"]]
        for response in (
            await mentor.patch(
                f"/v1/households/{not_ours['id']}",
                json={"address": "x"},
                headers={"If-Match": etag},
            ),
            await mentor.post(f"/v1/households/{not_ours['id']}/members", json=person()),
            await mentor.patch(
                f"/v1/persons/{not_ours['members'][0]['id']}",
                json={"title": "x"},
                headers={"If-Match": '"1"'},
            ),
            await mentor.post(
                f"/v1/households/{not_ours['id']}/status", json={"status": "in_progress"}
            ),
        ):
            assert_problem(response, 403, "not-permitted")
    assert_problem(await mentor.post("/v1/households", json=household()), 403)
    assert await counts(registry_settings) == before


# The gateway's identity


def forged(claims: dict[str, Any], key: str = DEV_INTERNAL_KEY, algorithm: str = "HS256") -> str:
    now = int(time.time())
    base = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "sub": "someone",
        "role": "national_admin",
        "area": "TH",
    }
    return jwt.encode(
        {k: v for k, v in {**base, **claims}.items() if v is not None}, key, algorithm=algorithm
    )


BAD_TOKENS = {
    "garbage": "not-a-token",
    "wrong key": forged({}, key="another-key-that-is-long-enough-0000000000"),
    "expired": mint_internal_token(
        Caller(subject="s", role=Role.national_admin, area="TH"), DEV_INTERNAL_KEY, ttl_seconds=-30
    ),
    "wrong audience": forged({"aud": "somebody-else"}),
    "wrong issuer": forged({"iss": "a-user-token"}),
    "unknown role": forged({"role": "king"}),
    "bad area": forged({"area": "24x"}),
    "no subject": forged({"sub": None}),
    "no expiry": forged({"exp": None}),
    "unsigned": jwt.encode(
        {"sub": "s", "role": "national_admin", "area": "TH"}, None, algorithm="none"
    ),
}


async def test_a_request_without_a_valid_gateway_identity_is_a_401_problem(
    registry_app: FastAPI,
    registry_settings: RegistrySettings,
) -> None:
    before = await counts(registry_settings)
    for name, token in [("missing", None), ("empty", ""), *BAD_TOKENS.items()]:
        headers = {IDENTITY_HEADER: token} if token is not None else {}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=registry_app),
            base_url="http://registry",
            headers=headers,
        ) as client:
            for response in (
                await client.get("/v1/areas"),
                await client.get("/v1/households"),
                await client.post("/v1/households", json=household()),
                await client.post(
                    "/v1/persons/lookup", json={"citizen_id": citizen_id(), "reason": "looking"}
                ),
            ):
                problem = assert_problem(response, 401, "unauthenticated")
                assert problem["detail"], name
    assert await counts(registry_settings) == before


async def test_every_response_carries_a_request_id_and_echoes_a_sane_one(
    admin: httpx.AsyncClient,
) -> None:
    mine = await admin.get("/v1/areas/24", headers={"X-Request-ID": "trace-abc.123"})
    assert mine.headers["x-request-id"] == "trace-abc.123"
    insane = await admin.get("/v1/areas/24", headers={"X-Request-ID": "a b\tc" * 50})
    assert insane.headers["x-request-id"] not in ("", "a b\tc" * 50)
    first, second = await admin.get("/v1/indicators"), await admin.get("/v1/indicators")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    for response in (
        await admin.get("/v1/nowhere"),
        await admin.delete("/v1/areas/24"),
        await admin.get("/healthz"),
    ):
        assert response.headers["x-request-id"]
    assert_problem(await admin.get("/v1/nowhere"), 404)
    assert_problem(await admin.delete("/v1/areas/24"), 405)
