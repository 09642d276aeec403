"""Forwarding a request to the service that owns it, and its answer back, unchanged.

One pooled keep-alive client per service. Bodies stream both ways (an upload of gigabytes is
never held); small answers are read whole, which is cheaper than relaying them in pieces.
Only the headers a service reads go to it, with the caller as a freshly signed internal
identity: the client's `Authorization` and any `X-Pinpoint-Identity` it sent never pass.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from services.gateway.errors import BadGateway, GatewayTimeout
from services.gateway.settings import GatewaySettings
from shared.auth import IDENTITY_HEADER, Caller, mint_internal_token
from shared.errors import BadRequest, ServiceUnavailable
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.tracing import inject, instrument_client

# What a service reads from a request; everything else stays at the gateway.
FORWARDED_HEADERS = (
    "accept",
    "accept-language",
    "content-type",
    "content-length",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "x-access-reason",
)
# RFC 9110 §7.6.1 hop-by-hop headers, and those uvicorn writes itself for every answer.
_NOT_RELAYED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
    }
)
# Replaying these cannot act twice: a dropped keep-alive connection is retried once.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SMALL_ANSWER_BYTES = 64 * 1024
# W3C trace context, version 00 or a later version that keeps its fields (§3.2.4).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")


class Upstream:
    """One service behind the gateway: its name and a pooled client to it."""

    def __init__(
        self, name: str, settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.name = name
        self.client = httpx.AsyncClient(
            base_url=settings.service_urls()[name],
            transport=transport,
            limits=httpx.Limits(
                max_connections=settings.upstream_max_connections,
                max_keepalive_connections=settings.upstream_max_connections,
                keepalive_expiry=settings.upstream_keepalive_seconds,
            ),
            timeout=timeout_for(settings, upload=False),
            trust_env=False,  # never through a proxy the environment happens to name
        )
        instrument_client(self.client)  # a client span per request while tracing

    async def alive(self) -> bool:
        """Whether the service answers its `/healthz` (the gateway's readiness)."""
        try:
            return (await self.client.get("/healthz", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self.client.aclose()


def timeout_for(settings: GatewaySettings, *, upload: bool) -> httpx.Timeout:
    """How long to wait for a service: long for uploads, which it stages before answering."""
    seconds = settings.upload_timeout_seconds if upload else settings.upstream_timeout_seconds
    return httpx.Timeout(seconds, connect=settings.upstream_connect_timeout_seconds)


def trace_context(request: Request) -> dict[str, str]:
    """While tracing, the request's span (a child of the caller's valid `traceparent`);
    otherwise the caller's `traceparent` and `tracestate` if the former is valid, else a new
    trace. (The client span then puts its own context in its place.)"""
    context: dict[str, str] = {}
    if inject(context):
        return context
    traceparent = request.headers.get("traceparent", "")
    match = _TRACEPARENT.fullmatch(traceparent)
    if (
        match is not None
        and match[1] != "ff"
        and not (match[1] == "00" and match[4])
        and int(match[2], 16) != 0
        and int(match[3], 16) != 0
    ):
        context["traceparent"] = traceparent
        if tracestate := request.headers.get("tracestate"):
            context["tracestate"] = tracestate
        return context
    # Not tracing, the gateway records no spans itself, so it starts the trace unsampled.
    return {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"}


def upstream_headers(
    request: Request, caller: Caller, internal_key: str, ttl: int
) -> dict[str, str]:
    """What the service gets: the headers it reads, the trace, the request ID and the caller."""
    headers = {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name))}
    headers.update(trace_context(request))
    headers[IDENTITY_HEADER] = mint_internal_token(caller, internal_key, ttl_seconds=ttl)
    if request_id := current_request_id():
        headers[REQUEST_ID_HEADER] = request_id
    if request.client is not None:
        headers["X-Forwarded-For"] = request.client.host
    return headers


def _has_body(request: Request) -> bool:
    return "content-length" in request.headers or "transfer-encoding" in request.headers


async def forward(
    request: Request, upstream: Upstream, headers: dict[str, str], timeouts: httpx.Timeout
) -> Response:
    """Send the request on to the service and relay its answer as it comes."""
    scope = request.scope
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    outgoing = upstream.client.build_request(
        request.method,
        target,
        # Values as they came, in the latin-1 Starlette read them in: httpx would encode a
        # str as ASCII and fail on any other byte (a Thai reason sent as UTF-8, say).
        headers=httpx.Headers(headers, encoding="latin-1"),
        content=request.stream() if _has_body(request) else None,
        timeout=timeouts,
    )
    answer = await _send(upstream, outgoing, retry=request.method in _SAFE_METHODS)
    relayed = [(k, v) for k, v in answer.headers.raw if k.lower() not in _NOT_RELAYED]
    if "cache-control" not in answer.headers:
        relayed.append((b"cache-control", b"no-store"))  # answers for one caller only
    length = answer.headers.get("content-length", "")
    response: Response
    if length.isdigit() and int(length) <= SMALL_ANSWER_BYTES:
        try:  # raw: any Content-Encoding the service chose is relayed with its header
            content = b"".join([chunk async for chunk in answer.aiter_raw()])
        except httpx.HTTPError as exc:
            raise BadGateway(f"the {upstream.name} service broke off its answer") from exc
        finally:
            await answer.aclose()
        response = Response(content, status_code=answer.status_code)
    else:
        response = StreamingResponse(
            _relay(answer), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
        )
    response.raw_headers = relayed
    return response


async def _send(upstream: Upstream, outgoing: httpx.Request, *, retry: bool) -> httpx.Response:
    name = upstream.name
    try:
        try:
            return await upstream.client.send(outgoing, stream=True)
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            if not retry:  # a request that may act is never sent twice
                raise
            # Most likely a pooled connection the service closed just then.
            return await upstream.client.send(outgoing, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ServiceUnavailable(f"the {name} service is not answering") from exc
    except httpx.TimeoutException as exc:
        raise GatewayTimeout(f"the {name} service did not answer in time") from exc
    except httpx.TransportError as exc:
        raise BadGateway(f"the {name} service broke off the exchange") from exc
    except ClientDisconnect as exc:
        raise BadRequest("the request body was interrupted; nothing was sent on") from exc


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
