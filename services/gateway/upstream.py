"""Forwarding a request to the service that owns it, and its answer back, unchanged.

One pooled keep-alive client per service. Bodies stream both ways (an upload of gigabytes is
never held); small answers are read whole, which is cheaper than relaying them in pieces.
Only the headers a service reads go to it, with the caller as a freshly signed internal
identity: the client's `Authorization` and any `X-Pinpoint-Identity` it sent never pass.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Scope

from services.gateway.errors import BadGateway, GatewayTimeout
from services.gateway.settings import GatewaySettings
from services.gateway.transport import AiohttpTransport
from shared.auth import IDENTITY_HEADER, Caller, mint_internal_token
from shared.errors import BadRequest, ServiceUnavailable
from shared.logging import REQUEST_ID_HEADER, current_request_id
from shared.tracing import inject, instrument_client

# What a service reads from a request; everything else stays at the gateway.
FORWARDED_HEADERS = frozenset(
    {
        b"accept",
        b"accept-language",
        b"content-type",
        b"content-length",
        b"idempotency-key",
        b"if-match",
        b"if-none-match",
        b"x-access-reason",
    }
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
    """One service behind the gateway: its name, its address and a pooled transport to it.

    Forwarding hands requests to the transport itself: the client's cookie jar, redirects,
    default headers and URL merging are nothing a relay wants, and cost a tenth of its time.
    Over the gateway's own aiohttp pool it does not even build an `httpx.Request` (a quarter
    of the gateway's own work on a request went into parsing the URL it had just joined).
    """

    def __init__(
        self, name: str, settings: GatewaySettings, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.name = name
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
            keepalive_expiry=settings.upstream_keepalive_seconds,
        )
        self.base_url = settings.service_urls()[name].rstrip("/")
        self.transport = transport or AiohttpTransport(limits)
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=self.transport,
            timeout=timeout_for(settings, upload=False),
        )
        # A client span per request while tracing (wraps this very transport).
        instrument_client(self.client)

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: httpx.AsyncByteStream | None,
        timeouts: httpx.Timeout,
    ) -> httpx.Response:
        """The service's answer to `method target`, its body still to come (close it when
        done). `target` is the path and query as the client sent them."""
        url = self.base_url + target
        if isinstance(self.transport, AiohttpTransport):
            return await self.transport.exchange(method, url, headers, body, timeouts.as_dict())
        request = httpx.Request(
            method, url, headers=headers, stream=body, extensions={"timeout": timeouts.as_dict()}
        )
        return await self.transport.handle_async_request(request)

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


def trace_context(traceparent: bytes, tracestate: bytes) -> list[tuple[bytes, bytes]]:
    """While tracing, the request's span (a child of the caller's valid `traceparent`);
    otherwise the caller's `traceparent` and `tracestate` if the former is valid, else a new
    trace. (The client span then puts its own context in its place.)"""
    context: dict[str, str] = {}
    if inject(context):
        return [(name.encode(), value.encode()) for name, value in context.items()]
    match = _TRACEPARENT.fullmatch(traceparent.decode("latin-1"))
    if (
        match is not None
        and match[1] != "ff"
        and not (match[1] == "00" and match[4])
        and int(match[2], 16) != 0
        and int(match[3], 16) != 0
    ):
        if tracestate:
            return [(b"traceparent", traceparent), (b"tracestate", tracestate)]
        return [(b"traceparent", traceparent)]
    # Not tracing, the gateway records no spans itself, so it starts the trace unsampled.
    return [(b"traceparent", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00".encode())]


class InternalTokens:
    """Each caller's internal identity, signed once and reused while over half its life is left.

    Signing costs more than the rest of the gateway's own work on a request; a service checks
    the token's expiry itself, so reuse within its life changes nothing it can see.
    """

    MAX_CALLERS = 10_000  # then start afresh: a bound, not an eviction policy worth more

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._tokens: dict[tuple[str, str, str, UUID | None], tuple[bytes, float]] = {}

    def identity(self, caller: Caller) -> bytes:
        """The caller's internal token, as the header value that carries it."""
        who = (caller.subject, caller.role.value, caller.area, caller.team_id)
        now = time.time()
        kept = self._tokens.get(who)
        if kept is not None and kept[1] > now:
            return kept[0]
        token = mint_internal_token(caller, self._key, ttl_seconds=self._ttl).encode()
        if len(self._tokens) >= self.MAX_CALLERS:
            self._tokens.clear()
        self._tokens[who] = (token, now + self._ttl / 2)
        return token


_IDENTITY = IDENTITY_HEADER.lower().encode()
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


def upstream_headers(scope: Scope, identity: bytes) -> list[tuple[bytes, bytes]]:
    """What the service gets: the headers it reads (each once, the first the client sent,
    byte for byte), the trace, the request ID and the caller."""
    headers: list[tuple[bytes, bytes]] = []
    seen: set[bytes] = set()
    traceparent = tracestate = b""
    for name, value in scope["headers"]:  # ASGI names are lower case
        if name in FORWARDED_HEADERS and name not in seen and value:
            seen.add(name)
            headers.append((name, value))
        elif name == b"traceparent" and not traceparent:
            traceparent = value
        elif name == b"tracestate" and not tracestate:
            tracestate = value
    headers += trace_context(traceparent, tracestate)
    headers.append((_IDENTITY, identity))
    if request_id := current_request_id():
        headers.append((_REQUEST_ID, request_id.encode()))
    if client := scope.get("client"):
        headers.append((b"x-forwarded-for", client[0].encode()))
    return headers


def _has_body(scope: Scope) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


async def forward(
    request: Request,
    upstream: Upstream,
    headers: list[tuple[bytes, bytes]],
    timeouts: httpx.Timeout,
) -> Response:
    """Send the request on to the service and relay its answer as it comes."""
    scope = request.scope
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    body = _Body(request) if _has_body(scope) else None
    answer = await _send(upstream, request.method, target, headers, body, timeouts)
    relayed: list[tuple[bytes, bytes]] = []
    length = b""
    cache_control = False
    for name, value in answer.headers.raw:
        lowered = name.lower()
        if lowered in _NOT_RELAYED:
            continue
        relayed.append((name, value))
        if lowered == b"content-length":
            length = value
        elif lowered == b"cache-control":
            cache_control = True
    if not cache_control:
        relayed.append((b"cache-control", b"no-store"))  # answers for one caller only
    response: Response
    if answer.is_stream_consumed:  # a transport that read the answer itself (a mock, say)
        response = Response(answer.content, status_code=answer.status_code)
    elif length.isdigit() and int(length) <= SMALL_ANSWER_BYTES:
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


async def _send(
    upstream: Upstream,
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    body: httpx.AsyncByteStream | None,
    timeouts: httpx.Timeout,
) -> httpx.Response:
    name = upstream.name
    try:
        try:
            return await upstream.send(method, target, headers, body, timeouts)
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            if method not in _SAFE_METHODS:  # a request that may act is never sent twice
                raise
            # Most likely a pooled connection the service closed just then.
            return await upstream.send(method, target, headers, body, timeouts)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ServiceUnavailable(f"the {name} service is not answering") from exc
    except httpx.TimeoutException as exc:
        raise GatewayTimeout(f"the {name} service did not answer in time") from exc
    except httpx.TransportError as exc:
        raise BadGateway(f"the {name} service broke off the exchange") from exc
    except ClientDisconnect as exc:
        raise BadRequest("the request body was interrupted; nothing was sent on") from exc


class _Body(httpx.AsyncByteStream):
    """The client's request body, passed on as it arrives."""

    def __init__(self, request: Request) -> None:
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.stream():
            yield chunk


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
