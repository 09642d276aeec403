"""`Idempotency-Key` on POST: replaying a key returns the first answer instead of acting twice.

Keys belong to the caller (the identity's subject) and are kept for a day. A key reused with a
different request, or whose first request is still running, answers 409. Only successes are
kept: after a refusal or a failure the key is forgotten, so a corrected retry can act.

The key is checked against a hash of the whole body, so the body is read first. Paths whose
bodies are streamed (bulk uploads of gigabytes) are passed through untouched instead: their
routes must be idempotent by themselves, as the registry's import is (a re-run imports nothing
twice).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import IDENTITY_HEADER, read_internal_token
from shared.db import run, transaction
from shared.errors import Conflict, PinpointError, Unprocessable, problem_response

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 200

metadata = sa.MetaData()
idempotency_keys = sa.Table(
    "idempotency_key",
    metadata,
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("headers", JSONB),
    sa.Column("body", sa.LargeBinary),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def idempotency_table_ddl(op: Any) -> None:
    """Create the key table in a service's migration."""
    op.create_table(
        "idempotency_key",
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("headers", JSONB),
        sa.Column("body", sa.LargeBinary),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("idempotency_key_created", "idempotency_key", ["created_at"])


# Response headers worth replaying (not Date, not the request ID of the first request).
_REPLAYED = {b"content-type", b"etag", b"location"}


class IdempotencyMiddleware:
    """Store the first answer to each (caller, key) and replay it for the same request."""

    def __init__(self, app: ASGIApp, unbuffered_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.unbuffered_paths = unbuffered_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get("headers", [])).get(HEADER.encode())
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or key is None
            or scope["path"] in self.unbuffered_paths
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await self._handle(scope, request, key.decode("latin-1"), send)
        except PinpointError as exc:
            response = problem_response(
                request, status=exc.status, slug=exc.slug, title=exc.title, detail=exc.detail
            )
            await response(scope, receive, send)

    async def _handle(self, scope: Scope, request: Request, key: str, send: Send) -> None:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise Unprocessable(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        token = request.headers.get(IDENTITY_HEADER)
        if not token:  # the route itself will refuse the request
            await self.app(scope, request.receive, send)
            return
        state = scope["app"].state
        subject = read_internal_token(token, state.settings.internal_key.get_secret_value()).subject
        body = await request.body()
        digest = hashlib.sha256(
            b"\0".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).digest()
        sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker

        stored = await _claim(sessionmaker, subject, key, digest)
        if stored is not None:
            await _replay(stored, digest, send)
            return

        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            await _settle(sessionmaker, subject, key, status, headers, b"".join(chunks))


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession], subject: str, key: str, digest: bytes
) -> sa.Row[Any] | None:
    """Take the key for this request, or return the row of whoever took it first."""
    async with transaction(sessionmaker) as session:
        await run(
            session,
            sa.delete(idempotency_keys).where(
                idempotency_keys.c.subject == subject,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at < datetime.now(UTC) - KEEP_FOR,
            ),
        )
        inserted = await run(
            session,
            insert(idempotency_keys)
            .values(subject=subject, key=key, request_hash=digest)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key),
        )
        if inserted.first() is not None:
            return None
        row = (
            await run(
                session,
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.subject == subject, idempotency_keys.c.key == key
                ),
            )
        ).first()
        assert row is not None
        return row


async def _replay(row: sa.Row[Any], digest: bytes, send: Send) -> None:
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was used for a different request")
    if row.status is None:
        raise Conflict("the first request with this Idempotency-Key is still running")
    headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in json.loads(json.dumps(row.headers or []))
    ]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": row.status, "headers": headers})
    await send({"type": "http.response.body", "body": row.body or b""})


async def _settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    subject: str,
    key: str,
    status: int | None,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """Keep a success; forget the key after anything else, so that a retry acts again."""
    where = (idempotency_keys.c.subject == subject, idempotency_keys.c.key == key)
    async with transaction(sessionmaker) as session:
        if status is None or not 200 <= status < 300:
            await run(session, sa.delete(idempotency_keys).where(*where))
            return
        kept = [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in headers if k.lower() in _REPLAYED
        ]
        await run(
            session,
            sa.update(idempotency_keys)
            .where(*where)
            .values(status=status, headers=kept, body=body),
        )
