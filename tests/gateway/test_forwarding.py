"""What passes through the gateway unchanged, and what the gateway itself adds or refuses."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from pinpoint.devservers import free_port
from services.registry.imports.generate import generate_households
from services.registry.settings import RegistrySettings
from shared.auth import Role
from tests.conftest import ClientFactory, eventually, registry_rows
from tests.gateway.conftest import Gateway, GatewayFactory, token
from tests.registry.imports_support import CSV, finished
from tests.registry.support import assert_problem, household

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_etag_if_match_and_location_pass_through(registry_gateway: Gateway) -> None:
    officer = registry_gateway.as_(Role.district_officer, "2401")
    created = await officer.post("/v1/households", json=household("240101"))
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"/v1/households/{created.json()['id']}"

    read = await officer.get(location)
    etag = read.headers["etag"]
    changed = await officer.patch(location, json={"address": "7 หมู่ 2"}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != etag
    stale = await officer.patch(location, json={"address": "8 หมู่ 2"}, headers={"If-Match": etag})
    assert_problem(stale, 412, "precondition-failed")
    missing = await officer.patch(location, json={"address": "8 หมู่ 2"})
    assert_problem(missing, 428)


async def test_a_services_problem_comes_back_exactly_as_it_sent_it(
    registry_gateway: Gateway, as_caller: ClientFactory
) -> None:
    path = f"/v1/households/{uuid4()}"
    through = await registry_gateway.as_(Role.national_admin, "TH").get(path)
    direct = await as_caller(Role.national_admin, "TH").get(path)
    assert_problem(through, 404, "not-found")
    assert through.json() == direct.json()
    assert through.headers["content-type"] == direct.headers["content-type"]

    invalid = await registry_gateway.as_(Role.national_admin, "TH").post(
        "/v1/households", json={"area_code": "24"}
    )
    assert_problem(invalid, 422, "validation-error")
    assert {e["field"] for e in invalid.json()["errors"]} == {"area_code"}


async def test_the_request_id_and_trace_context_reach_the_service(
    registry_gateway: Gateway, registry_settings: RegistrySettings
) -> None:
    officer = registry_gateway.as_(Role.district_officer, "2401")
    traced = await officer.post(
        "/v1/households",
        json=household("240101"),
        headers={"X-Request-ID": "ticket-4711", "traceparent": TRACEPARENT, "tracestate": "a=1"},
    )
    assert traced.status_code == 201, traced.text
    assert traced.headers["x-request-id"] == "ticket-4711"
    untraced = await officer.post("/v1/households", json=household("240101"))
    generated_id = untraced.headers["x-request-id"]

    rows = await registry_rows(
        registry_settings,
        "SELECT payload->>'subject' AS subject, headers FROM outbox "
        "WHERE payload->>'type' = 'registry.household.registered'",
    )
    headers = {row["subject"]: json.loads(row["headers"]) for row in rows}
    assert headers[traced.json()["id"]] == {
        "X-Request-ID": "ticket-4711",
        "traceparent": TRACEPARENT,
    }
    generated = headers[untraced.json()["id"]]
    assert generated["X-Request-ID"] == generated_id
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", generated["traceparent"])


async def test_idempotency_key_replays_come_back_through_the_gateway(
    registry_gateway: Gateway,
) -> None:
    officer = registry_gateway.as_(Role.district_officer, "2401")
    key = {"Idempotency-Key": str(uuid4())}
    first = await officer.post("/v1/households", json=household("240101"), headers=key)
    again = await officer.post("/v1/households", json=household("240101"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_large_csv_streams_through_to_the_import(registry_gateway: Gateway) -> None:
    officer = registry_gateway.as_(Role.province_officer, "24")
    sent = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal sent
        for chunk in generate_households(300, seed=7, area="24"):
            data = chunk.encode()
            sent += len(data)
            yield data

    response = await officer.post("/v1/imports/households", content=upload(), headers=CSV)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/imports/{response.json()['id']}"
    summary = await finished(officer, response.json()["id"])
    assert summary["state"] == "done", summary
    assert summary["households_imported"] == 300
    assert sent > 50_000  # many chunks, never one body


async def test_bodies_over_the_limit_are_refused(
    make_gateway: GatewayFactory, registry_app: FastAPI, logbook_app: FastAPI
) -> None:
    gateway = await make_gateway(
        {
            "registry": httpx.ASGITransport(app=registry_app),
            "logbook": httpx.ASGITransport(app=logbook_app),
        },
        max_body_bytes=2_000,
        max_import_bytes=20_000,
    )
    officer = gateway.as_(Role.province_officer, "24")
    too_long = household("240101", address="ก" * 1_000)
    assert_problem(await officer.post("/v1/households", json=too_long), 413, "payload-too-large")

    async def chunks(size: int) -> AsyncIterator[bytes]:
        yield b"house_code,household_key,area_code\n"
        for _ in range(size // 1_000):
            yield b"x" * 1_000

    # Undeclared lengths too: counted as the body streams on.
    undeclared = await officer.post("/v1/households", content=chunks(5_000), headers=CSV)
    assert_problem(undeclared, 413, "payload-too-large")
    upload = await officer.post("/v1/imports/households", content=chunks(30_000), headers=CSV)
    assert_problem(upload, 413, "payload-too-large")
    # The uploads' own, larger limit: a 5 kB file is no problem there.
    for path in ("/v1/imports/households", "/v1/imports/logbook"):
        small = await officer.post(path, content=chunks(5_000), headers=CSV)
        assert small.status_code != 413, (path, small.text)
    history = await officer.post("/v1/imports/logbook", content=chunks(30_000), headers=CSV)
    assert_problem(history, 413, "payload-too-large")


async def test_a_client_over_its_rate_gets_429_with_retry_after(
    make_gateway: GatewayFactory, registry_app: FastAPI
) -> None:
    gateway = await make_gateway(
        {"registry": httpx.ASGITransport(app=registry_app)},
        rate_limit_per_second=0.5,
        rate_limit_burst=3,
    )
    busy = gateway.as_(Role.analyst, "24", subject="busy")
    answers = [(await busy.get("/v1/indicators")).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = await busy.get("/v1/indicators")
    assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    # Another client has its own bucket; health probes are never limited.
    assert (await gateway.as_(Role.analyst, "24", subject="calm").get("/v1/indicators")).is_success
    assert (await gateway.client().get("/healthz")).status_code == 200
    # Without a valid token the client is its address, so guessing is limited too.
    guesses = [
        (await gateway.client({"Authorization": "Bearer x"}).get("/v1/areas")).status_code
        for _ in range(4)
    ]
    assert guesses == [401, 401, 401, 429]


async def test_cors_preflight_answers_only_the_configured_origins(
    make_gateway: GatewayFactory, registry_app: FastAPI
) -> None:
    gateway = await make_gateway(
        {"registry": httpx.ASGITransport(app=registry_app)},
        cors_origins=["https://app.pinpoint.go.th"],
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
    }
    allowed = await gateway.client().options(
        "/v1/households", headers={"Origin": "https://app.pinpoint.go.th", **preflight}
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://app.pinpoint.go.th"
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    other = await gateway.client().options(
        "/v1/households", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers

    read = await gateway.as_(Role.analyst, "24").get(
        "/v1/indicators", headers={"Origin": "https://app.pinpoint.go.th"}
    )
    assert read.headers["access-control-allow-origin"] == "https://app.pinpoint.go.th"
    assert "x-request-id" in read.headers["access-control-expose-headers"].lower()


async def test_no_cross_origin_access_unless_configured(registry_gateway: Gateway) -> None:
    read = await registry_gateway.as_(Role.analyst, "24").get(
        "/v1/indicators", headers={"Origin": "https://app.pinpoint.go.th"}
    )
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers


async def test_every_answer_carries_the_security_headers(registry_gateway: Gateway) -> None:
    answers = [
        await registry_gateway.as_(Role.analyst, "24").get("/v1/indicators"),
        await registry_gateway.client().get("/v1/indicators"),
        await registry_gateway.client().get("/healthz"),
    ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in answer.headers
    assert answers[0].headers["cache-control"] == "no-store"


async def test_requests_are_counted_by_route_family(registry_gateway: Gateway) -> None:
    await registry_gateway.as_(Role.analyst, "24").get("/v1/indicators")
    metrics = (await registry_gateway.client().get("/metrics")).text
    assert 'route="/v1/indicators{rest:path}",service="gateway",status="200"' in metrics


async def test_hsts_when_configured(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway({}, hsts_max_age_seconds=31_536_000)
    answer = await gateway.client().get("/healthz")
    assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_a_service_that_is_down_gives_503_and_readiness_says_which(
    registry_gateway: Gateway,
) -> None:
    mentor = registry_gateway.as_(Role.mentor, "240101")
    assert_problem(await mentor.get("/v1/menus"), 503, "service-unavailable")
    assert_problem(
        await mentor.post("/v1/interventions", json={"household_id": str(uuid4())}),
        503,
        "service-unavailable",
    )
    ready = await registry_gateway.client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "registry": "ok",
        "logbook": "failing",
        "analytics": "failing",
    }


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """An app behind a real uvicorn on a local port, for as long as the block runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="the slow service listens")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_service_too_slow_gives_504(make_gateway: GatewayFactory) -> None:
    async def slow(request: StarletteRequest) -> Response:
        await asyncio.sleep(2)
        return Response("{}", media_type="application/json")

    async with serving(Starlette(routes=[Route("/v1/progress/{rest:path}", slow)])) as url:
        gateway = await make_gateway({}, analytics_url=url, upstream_timeout_seconds=0.3)
        answer = await gateway.as_(Role.analyst, "24").get("/v1/progress/24")
    assert_problem(answer, 504, "gateway-timeout")


async def test_dot_segments_never_reach_a_route_that_is_not_public(
    registry_gateway: Gateway,
) -> None:
    admin = registry_gateway.as_(Role.national_admin, "TH")
    household = uuid4()
    for path in (
        "/v1/households/%2e%2e/%2e%2e/metrics",
        f"/v1/households/%2E%2E/%2E%2E/internal/households/{household}",
        "/v1/households/.%2e/.%2e/readyz",
    ):
        response = await admin.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")

    # Literal dot segments, as a client that does not tidy paths sends them (uvicorn passes
    # them on as they came; the gateway's own client would resolve them upstream).
    bearer = f"Bearer {token(Role.national_admin, 'TH')}".encode()
    for path in (
        "/v1/households/../../metrics",
        f"/v1/households/../../internal/households/{household}",
    ):
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"gateway"), (b"authorization", bearer)],
            "client": ("127.0.0.1", 50000),
            "server": ("gateway", 80),
        }
        await registry_gateway.app(scope, receive, send)
        assert sent[0]["status"] == 404, (path, sent)
