"""httpx's client over aiohttp's connection pool: the gateway's way to the services.

The gateway speaks httpx (and tests hand it httpx transports to in-process apps), but on the
wire httpcore costs about 0.9 ms of CPU a request on two loaded cores, aiohttp about 0.2 ms
(bench/gateway.py measures the hop). This transport keeps httpx's interface and errors and
lets aiohttp carry the bytes: one keep-alive pool, bodies streamed both ways, answers relayed
raw (nothing decompressed), no header added that the gateway did not choose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx

# Headers aiohttp would add by itself; the gateway forwards only what it chose to.
_NOT_ADDED = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose requests aiohttp sends over its pooled connections.

    Errors come back as httpx's, as httpcore would raise them: cannot connect is
    `ConnectError`, a connection that breaks before the answer is `RemoteProtocolError`,
    and each timeout is its httpx kind. A request is sent once: aiohttp's own resending of
    PUT and DELETE on a reused connection is off, so the gateway alone decides what may go
    twice (GET, HEAD and OPTIONS; see upstream.py).
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use: aiohttp binds to the running loop
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 0,
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=_NOT_ADDED,
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,  # never through a proxy the environment happens to name
            )
            # As aiohttp's own test client does: no resending behind the caller's back.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body: httpx.AsyncByteStream | bytes | None = request.content or None
        except httpx.RequestNotRead:  # a stream: passed on as it comes
            assert isinstance(request.stream, httpx.AsyncByteStream)
            body = request.stream
        return await self.exchange(
            request.method,
            str(request.url),
            request.headers.raw,
            body,
            request.extensions.get("timeout", {}),
            request=request,
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: httpx.AsyncByteStream | bytes | None,
        timeouts: dict[str, float | None],
        *,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """Send one request and return the answer with its body still to come.

        The gateway's own way in: no `httpx.Request` to build (its URL parsing alone cost a
        quarter of the gateway's work on a request). `timeouts` is httpx's timeout extension.
        """
        try:
            answer = await self._pool().request(
                method,
                url,
                headers=[
                    (name.decode("ascii"), _text(value))
                    for name, value in headers
                    if name.lower() != b"host"  # aiohttp writes it from the URL
                ],
                data=_stream(body) if isinstance(body, httpx.AsyncByteStream) else body,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.SocketTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except TimeoutError as exc:
            raise httpx.PoolTimeout(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=_Answer(answer, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _text(value: bytes) -> str:
    """A header value as aiohttp takes it (text it writes as UTF-8): UTF-8 bytes go on as
    they came; any other bytes are read as latin-1, as HTTP's old default, and go on in UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def _stream(body: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk


class _Answer(httpx.AsyncByteStream):
    """The answer's body as it arrives; closing it gives the connection back to the pool."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request | None) -> None:
        self._answer = answer
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except aiohttp.SocketTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=self._request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc), request=self._request) from exc

    async def aclose(self) -> None:
        self._answer.release()
