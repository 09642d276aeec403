"""Traces from the gateway through the services and across NATS, with the real OpenTelemetry SDK.

Each traced test installs a provider with an in-memory exporter before it builds its apps and
removes it after, so no other test is traced. Without an OTLP endpoint nothing is set up at all.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from shared import tracing
from shared.app import build_service_app
from shared.consumer import Consumer
from shared.events import Event
from shared.events.registry import HouseholdRegistered
from shared.logging import REQUEST_ID_HEADER, log_handler
from tests.conftest import ClientFactory, Servers, db_rows, eventually, running
from tests.gateway.conftest import token
from tests.registry.support import household
from tests.shared.conftest import client_for, tiny_settings

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"
HEX_TRACE_ID = f"{TRACE_ID:032x}"

said = logging.getLogger("tests.tracing")
log_router = APIRouter()


@log_router.get("/v1/say")
async def say() -> dict[str, str]:
    """Log one line while serving."""
    said.warning("said in a request")
    return {}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Record every span in memory for the test (apps built after this are traced)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


@pytest.fixture
def said_lines() -> Iterator[io.StringIO]:
    """The JSON log lines of the `tests.tracing` logger and the consumers, as configured."""
    stream = io.StringIO()
    handler = log_handler(stream)
    for logger in (said, logging.getLogger("shared.consumer")):
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in (said, logging.getLogger("shared.consumer")):
            logger.removeHandler(handler)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


@pytest.fixture
async def registry(
    spans: InMemorySpanExporter, registry_settings: RegistrySettings
) -> AsyncIterator[Any]:
    """The registry, built while tracing."""
    async with running(create_registry(registry_settings)) as app:
        yield app


async def test_a_request_is_served_in_a_span_of_the_callers_trace(
    spans: InMemorySpanExporter,
    registry: Any,
    caller_clients: ClientFactory,
    registry_settings: RegistrySettings,
) -> None:
    client = caller_clients(registry)
    created = await client.post(
        "/v1/households", json=household("240101"), headers={"traceparent": TRACEPARENT}
    )
    assert created.status_code == 201, created.text
    assert (await client.get("/healthz")).status_code == 200

    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "POST /v1/households"
    assert ids(server)[0] == TRACE_ID
    assert server.parent is not None and server.parent.span_id == CALLER_SPAN_ID
    # The event's headers carry the request's span (not the caller's), for its consumers.
    [row] = await db_rows(
        registry_settings,
        "SELECT headers FROM outbox WHERE payload->>'subject' = $1",
        created.json()["id"],
    )
    headers = json.loads(row["headers"])
    assert headers["traceparent"] == f"00-{HEX_TRACE_ID}-{ids(server)[1]:016x}-01"
    assert headers[REQUEST_ID_HEADER] == created.headers[REQUEST_ID_HEADER]


async def test_an_event_is_applied_by_another_service_in_the_trace_of_its_request(
    spans: InMemorySpanExporter,
    registry: Any,
    logbook_settings: LogbookSettings,
    caller_clients: ClientFactory,
) -> None:
    logbook = create_logbook(logbook_settings, registry_transport=httpx.ASGITransport(app=registry))
    async with running(logbook):
        created = await caller_clients(registry).post(
            "/v1/households", json=household("240101"), headers={"traceparent": TRACEPARENT}
        )
        assert created.status_code == 201, created.text

        def consumed() -> list[ReadableSpan]:
            return [
                span
                for span in named(spans, f"consume {HouseholdRegistered.type}")
                if ids(span)[0] == TRACE_ID
            ]

        [consume] = await eventually(consumed, what="the logbook applied the event")

    [server] = named(spans, "POST /v1/households")
    assert consume.kind is SpanKind.CONSUMER
    assert consume.parent is not None and consume.parent.span_id == ids(server)[1]
    assert consume.attributes is not None
    assert consume.attributes["messaging.consumer.group.name"].startswith("logbook")
    # It links to the span of the batch's transaction, a trace of its own.
    [link] = consume.links
    [batch] = [s for s in spans.get_finished_spans() if s.context == link.context]
    assert batch.name.startswith("apply logbook")
    assert ids(batch)[0] != TRACE_ID


async def test_a_log_line_in_a_request_names_its_trace_span_and_request(
    spans: InMemorySpanExporter, servers: Servers, said_lines: io.StringIO
) -> None:
    app = build_service_app(
        tiny_settings(servers), title="tiny", description="A test service.", routers=[log_router]
    )
    async with running(app), client_for(app) as client:
        answer = await client.get("/v1/say", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200

    [server] = named(spans, "GET /v1/say")
    [line] = log_lines(said_lines)
    assert line["message"] == "said in a request"
    assert line["request_id"] == answer.headers[REQUEST_ID_HEADER]
    assert line["trace_id"] == HEX_TRACE_ID
    assert line["span_id"] == f"{ids(server)[1]:016x}"


async def test_a_log_line_while_applying_an_event_names_the_requests_trace_and_id(
    spans: InMemorySpanExporter,
    registry: Any,
    caller_clients: ClientFactory,
    said_lines: io.StringIO,
) -> None:
    async def note(session: AsyncSession, event: Event) -> None:
        said.warning("applied %s", event.subject)

    consumer = Consumer(
        registry.state.bus,
        registry.state.sessionmaker,
        stream="REGISTRY",
        durable="tracing-test",
        handlers={HouseholdRegistered.type: note},
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        created = await caller_clients(registry).post(
            "/v1/households", json=household("240101"), headers={"traceparent": TRACEPARENT}
        )
        subject = created.json()["id"]
        message = f"applied {subject}"

        def noted() -> list[dict[str, Any]]:
            return [line for line in log_lines(said_lines) if line["message"] == message]

        [line] = await eventually(noted, what="the test consumer applied the event")
    finally:
        stop.set()
        await task

    [consume] = [
        s for s in named(spans, f"consume {HouseholdRegistered.type}") if ids(s)[0] == TRACE_ID
    ]
    assert line["request_id"] == created.headers[REQUEST_ID_HEADER]
    assert line["trace_id"] == HEX_TRACE_ID
    assert line["span_id"] == f"{ids(consume)[1]:016x}"


async def test_the_gateway_forwards_in_a_client_span_of_its_server_span(
    spans: InMemorySpanExporter, registry: Any
) -> None:
    settings = GatewaySettings(environment="test", registry_url="http://registry")
    gateway = create_gateway(settings, transports={"registry": httpx.ASGITransport(app=registry)})
    bearer = {"Authorization": f"Bearer {token('national_admin', 'TH')}"}
    async with (
        running(gateway),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway", headers=bearer
        ) as client,
    ):
        traced = await client.post(
            "/v1/households", json=household("240101"), headers={"traceparent": TRACEPARENT}
        )
        untraced = await client.post("/v1/households", json=household("240101"))
    assert traced.status_code == untraced.status_code == 201, traced.text

    finished = spans.get_finished_spans()
    gateway_servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert {s.name for s in gateway_servers} == {"POST /v1/households{rest:path}"}
    clients = [s for s in finished if s.kind is SpanKind.CLIENT]
    # In process the registry's span is INTERNAL (a span is current); across processes, SERVER.
    registry_servers = named(spans, "POST /v1/households")
    assert len(gateway_servers) == len(clients) == len(registry_servers) == 2
    for gateway_server in gateway_servers:
        trace_id, span_id = ids(gateway_server)
        [client_span] = [s for s in clients if ids(s)[0] == trace_id]
        [registry_server] = [s for s in registry_servers if ids(s)[0] == trace_id]
        assert client_span.parent is not None and client_span.parent.span_id == span_id
        assert registry_server.parent is not None
        assert registry_server.parent.span_id == ids(client_span)[1]
    # The caller's trace is kept; without one, the gateway's span starts a new trace.
    assert {ids(s)[0] for s in gateway_servers} - {TRACE_ID} != set()
    assert TRACE_ID in {ids(s)[0] for s in gateway_servers}


async def test_the_gateway_sends_its_client_spans_context_to_the_service(
    spans: InMemorySpanExporter,
) -> None:
    received: list[str] = []

    async def echo(request: Request) -> Response:
        received.append(request.headers["traceparent"])
        return Response(status_code=204)

    service = Starlette(routes=[Route("/v1/households/{rest:path}", echo)])
    settings = GatewaySettings(environment="test", registry_url="http://registry")
    gateway = create_gateway(settings, transports={"registry": httpx.ASGITransport(app=service)})
    bearer = {"Authorization": f"Bearer {token('national_admin', 'TH')}"}
    async with (
        running(gateway),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway", headers=bearer
        ) as client,
    ):
        answer = await client.get("/v1/households/x", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 204

    [client_span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert received == [f"00-{HEX_TRACE_ID}-{ids(client_span)[1]:016x}-01"]


async def test_without_an_otlp_endpoint_no_provider_is_installed_and_nothing_is_traced(
    registry_settings: RegistrySettings,
    caller_clients: ClientFactory,
    said_lines: io.StringIO,
) -> None:
    assert registry_settings.otlp_endpoint is None
    assert not tracing.configure_tracing(registry_settings)
    assert not tracing.enabled()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)

    async with running(create_registry(registry_settings)) as app:
        assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
        created = await caller_clients(app).post(
            "/v1/households", json=household("240101"), headers={"traceparent": TRACEPARENT}
        )
    assert created.status_code == 201, created.text
    # Today's behaviour: the caller's trace context goes into the event as it came.
    [row] = await db_rows(
        registry_settings,
        "SELECT headers FROM outbox WHERE payload->>'subject' = $1",
        created.json()["id"],
    )
    assert json.loads(row["headers"])["traceparent"] == TRACEPARENT


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []  # noqa: RUF012 - the one collector of one test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# Run in a child process: the OpenTelemetry global provider can be set only once per process.
_CHILD = """
from opentelemetry import trace
from services.registry.settings import RegistrySettings
from shared import tracing

traced = tracing.configure_tracing(RegistrySettings())
assert tracing.configure_tracing(RegistrySettings()) == traced  # idempotent
with trace.get_tracer("test").start_as_current_span("hello"):
    pass
if traced:
    trace.get_tracer_provider().shutdown()  # flushes the batch
print(traced)
"""


@pytest.mark.parametrize(
    ("env", "exported_as"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "{url}"}, "registry"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "{url}/v1/traces", "OTEL_SERVICE_NAME": "x"}, "x"),
        ({}, None),
    ],
)
def test_spans_are_exported_by_otlp_only_when_an_endpoint_is_configured(
    env: dict[str, str], exported_as: str | None
) -> None:
    collector = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{collector.server_port}"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        k: v.format(url=url) for k, v in env.items()
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        collector.shutdown()
        collector.server_close()
    assert done.stdout.strip() == str(exported_as is not None)
    if exported_as is None:
        assert _Collector.received == []
        return
    [(path, body)] = _Collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == exported_as
    assert [s.name for ss in resource_spans.scope_spans for s in ss.spans] == ["hello"]
