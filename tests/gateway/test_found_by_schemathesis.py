"""What schemathesis found at the gateway: answers the document left out, and a 500."""

from __future__ import annotations

from typing import Any

from services.gateway.openapi import public_openapi
from shared.auth import Role
from tests.gateway.conftest import Gateway
from tests.registry.support import assert_problem, household

IDEMPOTENCY_KEY = {"$ref": "#/components/parameters/IdempotencyKey"}
JSON = "application/json"


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in public_openapi()["paths"].items()
        for method, operation in item.items()
    ]


async def test_a_key_reused_for_another_body_is_a_409_every_keyed_post_documents(
    registry_gateway: Gateway,
) -> None:
    admin = registry_gateway.as_(Role.national_admin, "TH")
    key = {"Idempotency-Key": "one-key-two-bodies"}
    for name, status in (("ทีมพี่เลี้ยง 1", 201), ("ทีมพี่เลี้ยง 2", 409)):
        body = {"kind": "mentor_team", "name": name, "area_code": "240101"}
        answer = await admin.post("/v1/organizations", json=body, headers=key)
        assert answer.status_code == status, answer.text
    assert_problem(answer, 409)
    keyed = [
        (method, path, operation)
        for method, path, operation in _operations()
        if IDEMPOTENCY_KEY in operation.get("parameters", [])
    ]
    assert keyed
    for method, path, operation in keyed:
        assert "409" in operation["responses"], (method, path)


async def test_a_json_body_that_is_not_utf8_is_a_400_every_json_write_documents(
    registry_gateway: Gateway,
) -> None:
    admin = registry_gateway.as_(Role.national_admin, "TH")
    answer = await admin.post(
        "/v1/organizations", content=b'{"name": "\xff\xfe"}', headers={"Content-Type": JSON}
    )
    assert_problem(answer, 400)
    for method, path, operation in _operations():
        if JSON in operation.get("requestBody", {}).get("content", {}):
            assert "400" in operation["responses"], (method, path)


async def test_a_header_beyond_ascii_reaches_the_service_instead_of_failing(
    registry_gateway: Gateway,
) -> None:
    admin = registry_gateway.as_(Role.national_admin, "TH")
    registered = await admin.post("/v1/households", json=household("240101"))
    assert registered.status_code == 201, registered.text
    path = f"/v1/households/{registered.json()['id']}"
    stale = await admin.patch(
        path, json={"address": "1 หมู่ 2"}, headers={"If-Match": '"h-Õ"'.encode("latin-1")}
    )
    assert_problem(stale, 412)
    # A reason in Thai, sent as UTF-8 (not ASCII, so httpx would not forward it as text).
    reason = {"X-Access-Reason": "ตรวจสอบสิทธิ์".encode()}
    read = await admin.get(path, headers=reason)
    assert read.status_code == 200, read.text
