"""What the registry's tests share: valid citizen IDs, request bodies and problem checks."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

import httpx

from services.registry.settings import RegistrySettings
from shared.thai import citizen_id_check_digit
from tests.conftest import registry_rows

PROBLEM_JSON = "application/problem+json"
TABLES = (
    "area",
    "organization",
    "member",
    "household",
    "person",
    "status_change",
    "audit_entry",
    "pii_access",
    "outbox",
)

_serials = itertools.count(1)


def citizen_id(serial: int | None = None) -> str:
    """A valid 13-digit citizen ID (right check digit); a new one on every call by default."""
    twelve = f"3{(serial if serial is not None else next(_serials)) % 10**11:011d}"
    return twelve + str(citizen_id_check_digit(twelve))


def wrong_check_digit(digits: str) -> str:
    """The same citizen ID with its 13th digit changed, so the check fails."""
    return digits[:12] + str((int(digits[12]) + 1) % 10)


def person(first_name: str = "สมชาย", last_name: str = "ใจดี", **fields: Any) -> dict[str, Any]:
    return {"first_name": first_name, "last_name": last_name, **fields}


def household(area_code: str = "240101", **fields: Any) -> dict[str, Any]:
    return {
        "area_code": area_code,
        "address": "99 หมู่ 1",
        "survey_year": 2566,
        "failed_indicators": ["2560-04"],
        **fields,
    }


async def register(
    client: httpx.AsyncClient, area_code: str = "240101", **fields: Any
) -> dict[str, Any]:
    """Register a household and return its body (failing loudly if that did not work)."""
    response = await client.post("/v1/households", json=household(area_code, **fields))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_organization(
    client: httpx.AsyncClient, kind: str, area_code: str, name: str | None = None, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/organizations",
        json={
            "kind": kind,
            "area_code": area_code,
            "name": name or f"{kind} {area_code}",
            **fields,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem: the status, its media type, type/title/status and a request ID."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    assert response.headers.get("x-request-id"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"].startswith("https://")
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


def error_fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem.get("errors") or []}


async def counts(settings: RegistrySettings) -> dict[str, int]:
    """How many rows each registry table holds (to prove a refused request wrote nothing)."""
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES)
    return {r["t"]: r["n"] for r in await registry_rows(settings, sql)}


def ids(items: list[dict[str, Any]]) -> set[UUID]:
    return {UUID(i["id"]) for i in items}
