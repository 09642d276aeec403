"""The gateway's way to the services over real sockets: aiohttp under httpx's interface.

Everything else in tests/gateway reaches the services in process; here a service is a real
server on a port, so what the transport puts on the wire, and what it makes of a service
that is slow, gone or breaks off, is seen as a service would see it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from pinpoint.devservers import free_port, wait_for_port
from services.gateway.transport import AiohttpTransport
from shared.auth import Role
from tests.gateway.conftest import GatewayFactory

LIMITS = httpx.Limits(max_connections=10, keepalive_expiry=5)
GZIPPED = gzip.compress(b'{"zipped": true}')


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Says what it got: method, target, headers as bytes (latin-1), body size and digest."""
    if scope["type"] != "http":
        return
    body = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        body.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/slow"):
        await asyncio.sleep(2)
    if scope["path"] == "/zipped":
        headers = [(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(GZIPPED))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": GZIPPED})
        return
    said = json.dumps(
        {
            "method": scope["method"],
            "target": scope["raw_path"].decode() + "?" + scope["query_string"].decode(),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "size": size,
            "sha256": body.hexdigest(),
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"link", b"</a>; rel=next"),
        (b"link", b"</b>; rel=prev"),
        (b"x-thai", "ตรวจสอบ".encode()),
    ]
    await send({"type": "http.response.start", "status": 207, "headers": headers})
    await send({"type": "http.response.body", "body": said})


@asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    """A real uvicorn server on a free port for the block; its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await asyncio.to_thread(wait_for_port, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def raw_server(
    answer: bytes | None,
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server that reads a request's head, then answers `answer` (or nothing) and hangs
    up; the heads it read, to count what reached it."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def stale_keepalive_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers the first request on a connection and keeps it open, then reads the next
    request's head and hangs up without answering: a keep-alive connection gone stale."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(LIMITS)
    yield transport
    await transport.aclose()


async def send(transport: AiohttpTransport, request: httpx.Request) -> tuple[httpx.Response, bytes]:
    answer = await transport.handle_async_request(request)
    try:
        return answer, b"".join([chunk async for chunk in answer.aiter_raw()])
    finally:
        await answer.aclose()


async def test_headers_go_on_byte_for_byte_and_nothing_is_added(
    transport: AiohttpTransport,
) -> None:
    async with serving(echo) as url:
        request = httpx.Request(
            "GET",
            f"{url}/v1/things/%E0%B8%81?q=%E0%B8%81&a=1",
            headers=httpx.Headers(
                {
                    # Starlette's latin-1 reading of UTF-8 bytes, as the gateway holds them.
                    "x-access-reason": "ตรวจสอบ".encode().decode("latin-1"),
                    "if-match": '"h-Õ"',  # latin-1 only: goes on as text, in UTF-8
                    "x-pinpoint-identity": "token",
                },
                encoding="latin-1",
            ),
        )
        answer, body = await send(transport, request)
    said = json.loads(body)
    assert said["method"] == "GET"
    assert said["target"] == "/v1/things/%E0%B8%81?q=%E0%B8%81&a=1"
    headers = dict(said["headers"])
    assert headers["x-access-reason"].encode("latin-1").decode() == "ตรวจสอบ"
    assert headers["if-match"].encode("latin-1").decode() == '"h-Õ"'
    assert headers["x-pinpoint-identity"] == "token"
    assert headers["host"] == url.removeprefix("http://")
    # No header the gateway did not choose: no compression asked for, no agent, no type.
    assert not {"accept-encoding", "user-agent", "accept", "content-type"} & set(headers)
    # The answer as the service gave it: status, repeated headers in order, UTF-8 values.
    assert answer.status_code == 207
    assert answer.headers.get_list("link") == ["</a>; rel=next", "</b>; rel=prev"]
    assert (b"x-thai", "ตรวจสอบ".encode()) in answer.headers.raw


async def test_a_streamed_body_arrives_whole_with_its_length_or_chunked_without(
    transport: AiohttpTransport,
) -> None:
    piece = bytes(range(256)) * 4096  # 1 MiB
    whole = hashlib.sha256(piece * 5).hexdigest()

    class Upload(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(5):
                yield piece
                await asyncio.sleep(0)

    async with serving(echo) as url:
        sized = httpx.Request(
            "POST",
            f"{url}/upload",
            headers={"content-length": str(5 * len(piece))},
            stream=Upload(),
        )
        _, body = await send(transport, sized)
        said = json.loads(body)
        assert (said["size"], said["sha256"]) == (5 * len(piece), whole)
        assert dict(said["headers"])["content-length"] == str(5 * len(piece))
        assert "transfer-encoding" not in dict(said["headers"])

        unsized = httpx.Request("POST", f"{url}/upload", stream=Upload())
        _, body = await send(transport, unsized)
        said = json.loads(body)
        assert (said["size"], said["sha256"]) == (5 * len(piece), whole)
        assert dict(said["headers"])["transfer-encoding"] == "chunked"


async def test_a_compressed_answer_is_relayed_as_it_came(transport: AiohttpTransport) -> None:
    async with serving(echo) as url:
        answer, body = await send(transport, httpx.Request("GET", f"{url}/zipped"))
    assert answer.headers["content-encoding"] == "gzip"
    assert body == GZIPPED


async def test_each_failure_is_the_httpx_error_httpcore_would_raise(
    transport: AiohttpTransport,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/v1/x"
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("GET", nobody))

    async with serving(echo) as url:
        slow = httpx.Request("GET", f"{url}/slow", extensions={"timeout": {"read": 0.2}})
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(slow)

    async with raw_server(None) as (url, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(httpx.Request("POST", f"{url}/v1/x"))

    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"
    async with raw_server(cut) as (url, _):
        answer = await transport.handle_async_request(httpx.Request("GET", f"{url}/v1/x"))
        with pytest.raises(httpx.ReadError):
            await answer.aread()
        await answer.aclose()


async def test_through_the_gateway_a_write_is_never_sent_twice(
    make_gateway: GatewayFactory,
) -> None:
    async with raw_server(None) as (url, heads):
        gateway = await make_gateway({}, registry_url=url)
        officer = gateway.as_(Role.national_admin, "TH")
        answer = await officer.post("/v1/households", json={"area_code": "240101"})
        assert answer.status_code == 502, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert len(heads) == 1  # the service hung up: the write is not tried again


async def test_through_the_gateway_a_slow_service_is_a_504_and_a_gone_one_a_503(
    make_gateway: GatewayFactory,
) -> None:
    async with serving(echo) as url:
        gateway = await make_gateway({}, registry_url=url, upstream_timeout_seconds=0.3)
        officer = gateway.as_(Role.national_admin, "TH")
        fine = await officer.get("/v1/households?x=1")
        assert fine.status_code == 207
        forwarded = dict(json.loads(fine.content)["headers"])
        assert "authorization" not in forwarded and "x-pinpoint-identity" in forwarded
        slow = await officer.get("/v1/households/slow")
        assert slow.status_code == 504, slow.text
    gone = await officer.get("/v1/households")
    assert gone.status_code == 503, gone.text


async def test_a_put_on_a_stale_connection_is_not_sent_again(
    transport: AiohttpTransport,
) -> None:
    async with stale_keepalive_server() as (url, heads):
        first, _ = await send(transport, httpx.Request("PUT", f"{url}/v1/x", content=b"{}"))
        assert first.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(httpx.Request("PUT", f"{url}/v1/x", content=b"{}"))
    assert len(heads) == 2  # the second PUT reached the service once, and only once


async def test_an_answer_its_transport_read_already_is_relayed(
    make_gateway: GatewayFactory,
) -> None:
    """httpx's MockTransport hands back an answer already read: relayed all the same."""
    big = b"x" * 100_000  # past the size the gateway reads whole

    def service(request: httpx.Request) -> httpx.Response:
        body = big if request.url.path.endswith("/big") else b'{"ok": true}'
        return httpx.Response(200, content=body, headers={"etag": '"h-1"'})

    gateway = await make_gateway({"registry": httpx.MockTransport(service)})
    officer = gateway.as_(Role.national_admin, "TH")
    small = await officer.get("/v1/households/small")
    assert (small.status_code, small.content) == (200, b'{"ok": true}')
    assert small.headers["etag"] == '"h-1"'
    large = await officer.get("/v1/households/big")
    assert (large.status_code, large.content) == (200, big)
