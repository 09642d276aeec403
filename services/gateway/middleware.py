"""What the gateway does to every request before routing it: authenticate, limit, harden.

Pure ASGI, so the refusals are cheap and carry the request ID, CORS and security headers of
the middleware around them.
"""

from __future__ import annotations

import math

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import TooManyRequests
from services.gateway.ratelimit import RateLimiter
from services.gateway.tokens import KeysUnavailable, TokenRejected, TokenVerifier
from shared.auth import Caller
from shared.errors import PinpointError, ServiceUnavailable, Unauthenticated, problem_response

CALLER_STATE = "caller"  # the verified caller's key in the request's state
CLIENT_CREDENTIALS_PATH = "/v1/oauth/token"
DOCS_PATH = "/docs"
# Probes and scrapes: never limited, never asked for a token.
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Answered without a token, but counted against the client's address.
PUBLIC_PATHS = frozenset({"/openapi.json", DOCS_PATH, CLIENT_CREDENTIALS_PATH})

_REALM = 'Bearer realm="pinpoint"'


def caller_of(request: Request) -> Caller:
    """The caller the gate verified for this request."""
    caller: Caller = request.state.caller
    return caller


class Gate:
    """Verify the bearer token, then take the request from its client's rate-limit bucket.

    A client is its token's subject, or its address when it has no valid token: so failed
    guesses are limited too. Only the public paths answer without a valid token (401 with
    `WWW-Authenticate: Bearer` for the rest, RFC 6750).
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, limiter: RateLimiter) -> None:
        self.app = app
        self.verifier = verifier
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONS_PATHS:
            await self.app(scope, receive, send)
            return
        public = scope["path"] in PUBLIC_PATHS
        caller: Caller | None = None
        refusal: PinpointError | None = None
        if not public:
            try:
                caller = await self._caller(Headers(scope=scope).get("authorization"))
            except PinpointError as exc:
                refusal = exc
        client = scope.get("client")
        key = f"sub:{caller.subject}" if caller else f"ip:{client[0] if client else ''}"
        wait = self.limiter.wait_seconds(key)
        if wait:
            refusal = TooManyRequests(
                "slow down: this client's request rate is used up",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        if refusal is not None:
            await _refuse(refusal, scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)

    async def _caller(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "send a token as `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": _REALM},
            )
        try:
            return await self.verifier.caller(token.strip())
        except TokenRejected as exc:
            raise Unauthenticated(
                str(exc), headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'}
            ) from exc
        except KeysUnavailable as exc:
            raise ServiceUnavailable(str(exc), headers={"Retry-After": "10"}) from exc


async def _refuse(error: PinpointError, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        Request(scope),
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        headers=error.headers,
    )
    await response(scope, receive, send)


# Nothing the API answers is a page: no scripts, frames or embedding. The docs page loads
# Swagger UI from its CDN and starts it with an inline script.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Headers that tell browsers to treat every answer as data, never as a page to frame."""

    def __init__(self, app: ASGIApp, hsts_max_age_seconds: int) -> None:
        self.app = app
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }
        if hsts_max_age_seconds > 0:
            self.headers["Strict-Transport-Security"] = (
                f"max-age={hsts_max_age_seconds}; includeSubDomains"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] == DOCS_PATH else API_CSP

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_hardened)
