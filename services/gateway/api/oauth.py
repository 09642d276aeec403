"""`POST /v1/oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

Errors here are RFC 6749 §5.2 JSON (`{"error": "invalid_client"}`), not problem documents:
OAuth client libraries read that shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.middleware import CLIENT_CREDENTIALS_PATH
from services.gateway.passwords import hash_secret, new_secret, secret_matches
from services.gateway.settings import GatewaySettings, OAuthClient
from services.gateway.tokens import sign_token
from shared.auth import Caller

router = APIRouter()

FORM = "application/x-www-form-urlencoded"
GRANT = "client_credentials"
# Token answers must never be cached (RFC 6749 §5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenError(Exception):
    """An RFC 6749 §5.2 error: its code, its status and what the client did wrong."""

    def __init__(
        self, error: str, description: str, *, status: int = 400, basic: bool = False
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status, self.basic = error, description, status, basic


class Clients:
    """The configured clients, and the check of a client's secret against its hash."""

    def __init__(self, clients: list[OAuthClient]) -> None:
        self._by_id = {client.client_id: client for client in clients}

    @functools.cached_property
    def _decoy(self) -> str:
        """What an unknown client ID is checked against, so it takes as long as a known one."""
        return hash_secret(new_secret())

    async def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        """The client, if this is its secret."""
        client = self._by_id.get(client_id)
        stored = client.secret_hash if client else self._decoy
        # scrypt takes tens of milliseconds of CPU: off the event loop.
        matches = await asyncio.to_thread(secret_matches, secret, stored)
        return client if matches else None


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TokenError("invalid_request", "the body is not a valid form") from exc
    repeated = [name for name, values in fields.items() if len(values) > 1]
    if repeated:
        raise TokenError("invalid_request", f"{', '.join(repeated)} given more than once")
    return {name: values[0] for name, values in fields.items()}


def _basic_credentials(authorization: str) -> tuple[str, str]:
    """Client ID and secret from HTTP Basic, each form-encoded first (RFC 6749 §2.3.1)."""
    try:
        decoded = base64.b64decode(authorization, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TokenError("invalid_client", "bad Basic credentials", status=401, basic=True) from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise TokenError("invalid_client", "bad Basic credentials", status=401, basic=True)
    return unquote_plus(client_id), unquote_plus(secret)


async def _client(request: Request) -> OAuthClient:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        raise TokenError("invalid_request", f"send the grant as {FORM}")
    form = _form(await request.body())
    if "grant_type" not in form:
        raise TokenError("invalid_request", "grant_type is missing")
    if form["grant_type"] != GRANT:
        raise TokenError("unsupported_grant_type", f"only {GRANT} is supported")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    basic = scheme.lower() == "basic"
    if basic:
        if "client_secret" in form:
            raise TokenError("invalid_request", "authenticate the client one way, not two")
        client_id, secret = _basic_credentials(credentials.strip())
    elif "client_id" in form and "client_secret" in form:
        client_id, secret = form["client_id"], form["client_secret"]
    else:
        raise TokenError("invalid_client", "give client_id and client_secret", status=401)
    clients: Clients = request.app.state.clients
    client = await clients.authenticate(client_id, secret)
    if client is None:
        raise TokenError(
            "invalid_client", "unknown client or wrong secret", status=401, basic=basic
        )
    return client


@router.post(CLIENT_CREDENTIALS_PATH, include_in_schema=False)
async def issue_token(request: Request) -> JSONResponse:
    """Exchange a client's ID and secret for an access token carrying its role and area."""
    try:
        client = await _client(request)
    except TokenError as exc:
        headers = dict(_NO_STORE)
        if exc.basic:
            headers["WWW-Authenticate"] = 'Basic realm="pinpoint"'
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers=headers,
        )
    settings: GatewaySettings = request.app.state.settings
    caller = Caller(
        subject=client.client_id, role=client.role, area=client.area, team_id=client.team_id
    )
    token = sign_token(
        request.app.state.signing_key,
        caller,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        client_id=client.client_id,
    )
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": settings.access_token_ttl_seconds,
        },
        headers=_NO_STORE,
    )
