"""The registry's OpenAPI document: every route, with the problems it may answer."""

from __future__ import annotations

import httpx


async def test_every_route_declares_its_problems(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for path in (
        "/v1/areas",
        "/v1/areas/{code}",
        "/v1/indicators",
        "/v1/organizations",
        "/v1/organizations/{organization_id}/members/{member_id}",
        "/v1/households",
        "/v1/households/{household_id}/mentor-team",
        "/v1/persons/lookup",
        "/v1/persons/{person_id}",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            assert {"401", "422"} <= operation["responses"].keys(), (method, path)
            assert operation.get("description") or operation.get("summary"), (method, path)
    patch = paths["/v1/households/{household_id}"]["patch"]["responses"]
    assert {"404", "409", "412", "428"} <= patch.keys()
    assert "412" in paths["/v1/households/{household_id}/mentor-team"]["put"]["responses"]
    assert "400" in paths["/v1/households"]["get"]["responses"]
