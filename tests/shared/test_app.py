"""What every service gets from shared.app: request IDs, health, readiness and metrics."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shared.logging import REQUEST_ID_HEADER
from tests.conftest import Servers, running
from tests.shared.conftest import client_for, tiny_app, tiny_settings, unused_nats_url

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_a_sane_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things/1", headers={REQUEST_ID_HEADER: "abc-123.x:y_z"})
    assert response.status_code == 200
    assert response.headers[REQUEST_ID_HEADER] == "abc-123.x:y_z"


async def test_a_request_without_an_id_gets_a_fresh_one(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/things/1")).headers[REQUEST_ID_HEADER]
    second = (await client.get("/v1/things/1")).headers[REQUEST_ID_HEADER]
    assert UUID7.match(first) and UUID7.match(second)
    assert first != second


async def test_an_insane_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for insane in ("", "a b", "x" * 129, "<script>", "ไทย"):
        response = await client.get("/v1/things/1", headers={REQUEST_ID_HEADER: insane.encode()})
        assert UUID7.match(response.headers[REQUEST_ID_HEADER]), insane


async def test_error_responses_carry_the_request_id_too(client: httpx.AsyncClient) -> None:
    too_big = b'{"name": "' + b"x" * 100 + b'", "count": 1}'
    requests = [
        client.build_request("GET", "/v1/nothing-here"),
        client.build_request("GET", "/v1/things/0"),
        client.build_request("DELETE", "/v1/things/1"),
        client.build_request("GET", "/v1/things/abc"),
        client.build_request(
            "POST", "/v1/things", content=too_big, headers={"content-type": "application/json"}
        ),
        client.build_request("GET", "/v1/things/boom"),
    ]
    for n, request in enumerate(requests):
        request.headers[REQUEST_ID_HEADER] = f"req-{n}"
        response = await client.send(request)
        assert response.status_code >= 400
        assert response.headers.get(REQUEST_ID_HEADER) == f"req-{n}", (
            request.method,
            request.url.path,
            response.status_code,
        )


async def test_healthz_says_the_process_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_database_and_nats_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "nats": "ok", "consumers": "ok"},
    }


async def test_readyz_names_nats_when_nats_is_down(servers: Servers) -> None:
    app = tiny_app(
        tiny_settings(servers, nats_url=unused_nats_url(), nats_connect_timeout_seconds=0.5)
    )
    async with running(app), client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {"database": "ok", "nats": "failing", "consumers": "ok"},
    }


async def test_readyz_names_the_database_when_it_is_missing(servers: Servers) -> None:
    app = tiny_app(tiny_settings(servers, database_url=servers.database_url("no_such_db")))
    async with running(app), client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failing", "nats": "ok", "consumers": "ok"}


def _requests_total(text: str, service: str) -> dict[tuple[str, str, str], float]:
    """pinpoint_http_requests_total of one service, by (method, route, status)."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "pinpoint_http_requests_total"
                and sample.labels["service"] == service
            ):
                key = (sample.labels["method"], sample.labels["route"], sample.labels["status"])
                counts[key] = sample.value
    return counts


async def _requests_since(
    client: httpx.AsyncClient, service: str, before: dict[tuple[str, str, str], float]
) -> dict[tuple[str, str, str], float]:
    """How many requests of each (method, route, status) were counted since `before`."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    now = _requests_total(response.text, service)
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


async def test_metrics_count_requests_by_route_template(
    tiny: FastAPI, client: httpx.AsyncClient
) -> None:
    service = tiny.state.settings.service_name
    before = _requests_total((await client.get("/metrics")).text, service)
    for thing_id in (1, 2, 3):
        assert (await client.get(f"/v1/things/{thing_id}")).status_code == 200
    await client.get("/v1/things/0")
    await client.get("/v1/nothing/here/at/all")
    await client.get("/v1/things/boom")

    assert await _requests_since(client, service, before) == {
        ("GET", "/metrics", "200"): 1,
        ("GET", "/v1/things/{thing_id}", "200"): 3,
        ("GET", "/v1/things/{thing_id}", "404"): 1,
        ("GET", "/v1/things/boom", "500"): 1,
        # An unknown path is one label, not one series per path a scanner probes.
        ("GET", "unmatched", "404"): 1,
    }


async def test_metrics_count_refused_bodies(tiny: FastAPI, client: httpx.AsyncClient) -> None:
    service = tiny.state.settings.service_name
    before = _requests_total((await client.get("/metrics")).text, service)
    too_big = b'{"name": "' + b"x" * 100 + b'", "count": 1}'
    response = await client.post(
        "/v1/things", content=too_big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert await _requests_since(client, service, before) == {
        ("GET", "/metrics", "200"): 1,
        ("POST", "/v1/things", "413"): 1,
    }


async def test_metrics_show_the_database_pool_in_use(
    tiny: FastAPI, client: httpx.AsyncClient
) -> None:
    service = tiny.state.settings.service_name
    assert (await client.get("/readyz")).status_code == 200  # opens a connection
    values = {}
    for family in text_string_to_metric_families((await client.get("/metrics")).text):
        for sample in family.samples:
            if sample.name.startswith("pinpoint_db_pool") and sample.labels == {"service": service}:
                values[sample.name] = sample.value
    assert values["pinpoint_db_pool_connections_in_use"] == 0  # the check gave it back
    assert values["pinpoint_db_pool_connections_open"] >= 1


async def test_readyz_can_judge_on_the_database_alone_while_nats_is_down(
    servers: Servers,
) -> None:
    app = tiny_app(
        tiny_settings(servers, nats_url=unused_nats_url(), nats_connect_timeout_seconds=0.5)
    )
    async with running(app), client_for(app) as client:
        narrowed = await client.get("/readyz", params={"check": "database"})
        unknown = await client.get("/readyz", params={"check": "nothing"})
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["checks"] == {"database": "ok"}  # NATS not even asked
    assert unknown.status_code == 400
    assert unknown.headers["content-type"].startswith("application/problem+json")
