"""Every error a service answers is an RFC 9457 problem+json document with a stable type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from shared.errors import PROBLEM_JSON, TYPE_BASE
from tests.shared.conftest import MAX_BODY_BYTES


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The problem document of a response, after checking its status, media type and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == TYPE_BASE + slug
    assert body["status"] == status
    assert body["title"]
    assert body["instance"] == response.request.url.path
    return body


async def test_unknown_route_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    problem(await client.get("/v1/nothing-here"), 404, "not-found")


async def test_a_missing_resource_is_a_not_found_problem_with_detail(
    client: httpx.AsyncClient,
) -> None:
    body = problem(await client.get("/v1/things/0"), 404, "not-found")
    assert body["detail"] == "no thing 0"


async def test_wrong_method_is_a_method_not_allowed_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/things/1")
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET"


async def test_invalid_fields_are_listed_one_by_one(client: httpx.AsyncClient) -> None:
    body = problem(
        await client.post("/v1/things", json={"name": "", "count": -1}), 422, "validation-error"
    )
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"name", "count"}
    assert all(fields.values())


async def test_invalid_path_and_query_parameters_name_where_they_are(
    client: httpx.AsyncClient,
) -> None:
    body = problem(await client.get("/v1/things/abc"), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["path.thing_id"]


async def test_a_missing_body_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    body = problem(await client.post("/v1/things"), 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["body"]


async def test_malformed_json_is_a_validation_problem_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/things",
        content=b'{"name": "x", "count": ',
        headers={"content-type": "application/json"},
    )
    body = problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["body"]
    assert "JSON" in body["errors"][0]["message"]


async def test_a_body_over_the_limit_with_content_length_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/things", json={"name": "x" * MAX_BODY_BYTES, "count": 1})
    assert "content-length" in response.request.headers
    body = problem(response, 413, "payload-too-large")
    assert str(MAX_BODY_BYTES) in body["detail"]


async def test_a_chunked_body_over_the_limit_is_refused_too(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(MAX_BODY_BYTES):
            yield b"x"
        yield b'", "count": 1}'

    response = await client.post(
        "/v1/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    problem(response, 413, "payload-too-large")


async def test_a_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    content = b'{"name": "", "count": 1}'
    content = content.replace(b'""', b'"' + b"x" * (MAX_BODY_BYTES - len(content)) + b'"')
    assert len(content) == MAX_BODY_BYTES
    response = await client.post(
        "/v1/things", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_a_bug_is_an_internal_error_problem_that_reveals_nothing(
    client: httpx.AsyncClient,
) -> None:
    body = problem(await client.get("/v1/things/boom"), 500, "internal-error")
    assert "a bug" not in str(body)
