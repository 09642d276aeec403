"""OpenTelemetry traces: exported by OTLP when an endpoint is configured, off and free otherwise.

One trace runs from the gateway through the services and across NATS. Each app gets server
spans from the FastAPI instrumentation; an event's outbox row keeps the W3C trace context of
the span that wrote it, the relay sends that on as NATS message headers, and a consumer applies
each event in a `consume {type}` span whose parent is that context. While tracing is off no SDK
provider exists, no app is instrumented, and the hooks below return before doing anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Link, SpanKind

from shared.logging import REQUEST_ID_HEADER, request_id_var

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

    from shared.events import Event
    from shared.settings import ServiceSettings

# Probes and scrapes: a span each would bury the requests that matter.
EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Record pinpoint's spans with `provider` from now on (None: record none).

    Apps and clients take the provider when they are instrumented, so set it before building
    them. Tests install a provider with an in-memory exporter this way.
    """
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("pinpoint") if provider is not None else None


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def configure_tracing(settings: ServiceSettings) -> bool:
    """Export this process's spans by OTLP if an endpoint is configured; say whether it traces.

    Idempotent: the first call with an endpoint sets up the provider (and the OpenTelemetry
    global one, for libraries that look there); later calls keep it. The exporter reads the
    standard `OTEL_EXPORTER_OTLP_*` variables (endpoint, headers, timeout, compression).
    """
    if _provider is not None:
        return True
    if not settings.otlp_endpoint:
        return False
    # Imported only here: a service that does not trace never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = settings.otel_service_name or settings.service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    set_tracer_provider(provider)
    return True


def instrument_app(app: FastAPI) -> None:
    """A server span for every request the app serves (probes and scrapes excepted)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        # The metrics are Prometheus' job (shared/metrics.py).
        meter_provider=NoOpMeterProvider(),
        excluded_urls=EXCLUDED_URLS,
        # One span per request, not one more per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )


def instrument_client(client: httpx.AsyncClient) -> None:
    """A client span for every request `client` sends, with its trace context in the headers."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=_provider, meter_provider=NoOpMeterProvider()
    )


def inject(headers: MutableMapping[str, str]) -> bool:
    """Write the current span's `traceparent` (and `tracestate`) into `headers` (HTTP or NATS).

    Returns whether it did: not while tracing is off, nor outside a span.
    """
    if _tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return False
    propagate.inject(headers)
    return True


def with_current_context(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with the current span's trace context in place of any they carry (a copy);
    `headers` themselves while tracing is off."""
    if _tracer is None:
        return headers
    traced = dict(headers)
    return traced if inject(traced) else headers


@contextmanager
def consumer_batch(durable: str, stream: str, size: int) -> Iterator[None]:
    """A span around one transaction that applies a fetched batch (None while off).

    It starts a trace of its own: the batch's events belong to many traces, and each event's
    `consume` span links back to it.
    """
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(
        f"apply {durable}",
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        attributes={
            "messaging.system": "nats",
            "messaging.consumer.group.name": durable,
            "messaging.destination.name": stream,
            "messaging.batch.message_count": size,
        },
    ):
        yield


@contextmanager
def consuming(
    event: Event, carrier: Mapping[str, str] | None, *, durable: str, stream: str
) -> Iterator[None]:
    """Apply one event as part of the request that caused it: its request ID for the logs,
    and (while tracing) a `consume {type}` span whose parent is the producer's span."""
    carrier = carrier or {}
    token = request_id_var.set(carrier.get(REQUEST_ID_HEADER))
    try:
        if _tracer is None:
            yield
            return
        batch = trace.get_current_span().get_span_context()
        links: Sequence[Link] = [Link(batch)] if batch.is_valid else ()
        with _tracer.start_as_current_span(
            f"consume {event.type}",
            context=propagate.extract(carrier),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": durable,
                "messaging.destination.name": stream,
                "messaging.message.id": str(event.id),
            },
        ):
            yield
    finally:
        request_id_var.reset(token)
