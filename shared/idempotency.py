"""`Idempotency-Key` on POST: replaying a key returns the first answer instead of acting twice.

Keys belong to the caller (the identity's subject) and are kept for a day (each service forgets
older ones every hour: the answers show what was asked, and are kept no longer than needed).
The first answer is replayed only to the same request from the same caller in the same role,
area and team (the checks the route made still hold); a key reused otherwise, or whose first
request is still running, answers 409. Only successes are kept: after a refusal or a failure
the key is forgotten, so a corrected retry can act. A service whose answers hold personal data
keeps them sealed (`AnswerSeal`), so they are no more readable at rest than the records they
show.

The key is claimed inside the request's own transaction (the first statement of the session
the route uses), so the claim is committed with the write or not at all: a request cut short
by a lost database or a killed process leaves no claim behind to block its retry, and a retry
can never act again on a write that was committed.

The key is checked against a hash of the whole body, so the body is read first. Paths whose
bodies are streamed (bulk uploads of gigabytes) are passed through untouched instead: their
routes must be idempotent by themselves, as the registry's import is (a re-run imports nothing
twice). So are reads sent as POST (a lookup by a secret that does not belong in a URL): they
change nothing, and each one runs again, authorized and logged as a read, instead of being
replayed from a kept copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import IDENTITY_HEADER, read_internal_token
from shared.db import (
    EVENTS_STAGED,
    REQUEST_TRANSACTION_STATE,
    broken_off,
    database_unavailable,
    run,
    transaction,
)
from shared.errors import (
    Conflict,
    PinpointError,
    ServiceUnavailable,
    Unprocessable,
    problem_response,
)

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_FOR = timedelta(hours=24)
FORGET_EVERY_SECONDS = 3600.0
MAX_KEY_LENGTH = 200

logger = logging.getLogger(__name__)

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


# The header in the merged OpenAPI document: one shared parameter (services/gateway/openapi.py).
KEY_PARAMETER = {"$ref": "#/components/parameters/IdempotencyKey"}

# Response headers worth replaying (not Date, not the request ID of the first request).
_REPLAYED = {b"content-type", b"etag", b"location"}


class AnswerSeal(Protocol):
    """Encrypts the answers kept for a replay, and opens them again."""

    def seal(self, data: bytes) -> bytes: ...

    def unseal(self, blob: bytes) -> bytes: ...


class IdempotencyMiddleware:
    """Store the first answer to each (caller, key) and replay it for the same request.

    `unbuffered_paths` and `reads` are passed through untouched (streamed uploads; reads sent
    as POST); `seal`, when given, encrypts the answers kept.
    """

    def __init__(
        self,
        app: ASGIApp,
        unbuffered_paths: frozenset[str] = frozenset(),
        reads: frozenset[str] = frozenset(),
        seal: AnswerSeal | None = None,
    ) -> None:
        self.app = app
        self.unbuffered_paths = unbuffered_paths
        self.reads = reads
        self.seal = seal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get("headers", [])).get(HEADER.encode())
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or key is None
            or scope["path"] in self.unbuffered_paths
            or scope["path"] in self.reads
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
        caller = read_internal_token(token, state.settings.internal_key.get_secret_value())
        subject = caller.subject
        body = await request.body()
        # The request and who made it: a replay skips the route's checks of role and scope,
        # so it is only for the caller they were made for.
        digest = hashlib.sha256(
            b"\0".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    caller.role.value.encode(),
                    caller.area.encode(),
                    str(caller.team_id or "").encode(),
                    body,
                ]
            )
        ).digest()
        sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker

        stored = await _lookup(sessionmaker, subject, key)
        if stored is not None:
            await _replay(stored, digest, send, self.seal)
            return

        claim = _Claim(sessionmaker, subject, key, digest, self.seal)
        scope.setdefault("state", {})[REQUEST_TRANSACTION_STATE] = claim.transaction
        messages: list[Message] = []

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            messages.append(message)  # sent once the answer is committed with the write

        try:
            await self.app(scope, replay_body, capture)
            if claim.conflicted and (stored := await _lookup(sessionmaker, subject, key)):
                await _replay(stored, digest, send, self.seal)  # the first finished meanwhile
                return
            messages = await claim.finish(scope, messages)
        finally:
            await claim.close()
        for message in messages:
            await send(message)


class _Claim:
    """A request's claim of its key, taken in the request's own transaction, which it ends:
    the write, the claim and the answer kept for a replay are committed together."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        subject: str,
        key: str,
        digest: bytes,
        seal: AnswerSeal | None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.subject, self.key, self.digest, self.seal = subject, key, digest, seal
        self.session: AsyncSession | None = None
        self.taken = self.conflicted = self.failed = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The request's session (`shared.db.SessionDep`), with the key claimed first.

        A concurrent first request holds the key's row uncommitted: the claim waits for it
        to commit (then this request is refused, or answered with its answer) or to roll
        back (then this one acts). The transaction is ended by `finish`, not here.
        """
        self.session = session = self.sessionmaker()
        try:
            inserted = await run(
                session,
                insert(idempotency_keys)
                .values(subject=self.subject, key=self.key, request_hash=self.digest)
                .on_conflict_do_nothing()
                .returning(idempotency_keys.c.key),
            )
            if inserted.first() is None:
                self.conflicted = True
                raise Conflict("the first request with this Idempotency-Key is still running")
            self.taken = True
            yield session
        except BaseException:
            self.failed = True
            raise

    async def finish(self, scope: Scope, messages: list[Message]) -> list[Message]:
        """Commit the request's transaction with its answer (or, after a failure, roll it
        back); the messages to send: the answer, or a problem if the commit failed."""
        status, headers, body = _answer(messages)
        success = status is not None and 200 <= status < 300
        where = (idempotency_keys.c.subject == self.subject, idempotency_keys.c.key == self.key)
        if self.session is None:  # a route without a database session: keep a success
            if success:
                async with transaction(self.sessionmaker) as session:
                    await run(
                        session,
                        insert(idempotency_keys)
                        .values(
                            subject=self.subject,
                            key=self.key,
                            request_hash=self.digest,
                            **_kept(status, headers, body, self.seal),
                        )
                        .on_conflict_do_nothing(),
                    )
            return messages
        session = self.session
        if self.failed:
            await session.rollback()
            return messages
        if success:
            await run(
                session,
                sa.update(idempotency_keys)
                .where(*where)
                .values(**_kept(status, headers, body, self.seal)),
            )
        else:  # not a success, yet not rolled back: keep what it did, forget the key
            await run(session, sa.delete(idempotency_keys).where(*where))
        try:
            await session.commit()
        except Exception as exc:
            # As `shared.db.SessionDep` does: a failed commit is an error answer, never a 2xx.
            await session.rollback()
            retry = database_unavailable(exc) or broken_off(exc)
            failed = ServiceUnavailable if retry else PinpointError
            response = problem_response(
                Request(scope), status=failed.status, slug=failed.slug, title=failed.title
            )
            sent: list[Message] = []

            async def keep(message: Message) -> None:
                sent.append(message)

            async def nothing() -> Message:
                return {"type": "http.disconnect"}

            await response(scope, nothing, keep)
            return sent
        if session.info.get(EVENTS_STAGED):
            relay = getattr(scope["app"].state, "relay", None)
            if relay is not None:
                relay.wake()
        return messages

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _answer(messages: list[Message]) -> tuple[int | None, list[tuple[bytes, bytes]], bytes]:
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    for message in messages:
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
    return status, headers, b"".join(chunks)


def _kept(
    status: int | None, headers: list[tuple[bytes, bytes]], body: bytes, seal: AnswerSeal | None
) -> dict[str, Any]:
    """The columns of an answer kept for a replay."""
    kept = [
        [k.decode("latin-1"), v.decode("latin-1")] for k, v in headers if k.lower() in _REPLAYED
    ]
    return {"status": status, "headers": kept, "body": seal.seal(body) if seal else body}


async def _lookup(
    sessionmaker: async_sessionmaker[AsyncSession], subject: str, key: str
) -> sa.Row[Any] | None:
    """The row of the request that took this key first, if one did (and not too long ago)."""
    where = (idempotency_keys.c.subject == subject, idempotency_keys.c.key == key)
    async with transaction(sessionmaker) as session:
        await run(
            session,
            sa.delete(idempotency_keys).where(
                *where, idempotency_keys.c.created_at < datetime.now(UTC) - KEEP_FOR
            ),
        )
        return (await run(session, sa.select(idempotency_keys).where(*where))).first()


async def forget_expired(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Delete every key (and answer) kept longer than `KEEP_FOR`; how many."""
    async with transaction(sessionmaker) as session:
        result = await run(
            session,
            sa.delete(idempotency_keys).where(
                idempotency_keys.c.created_at < datetime.now(UTC) - KEEP_FOR
            ),
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def forget_expired_every(
    sessionmaker: async_sessionmaker[AsyncSession],
    stop: asyncio.Event,
    every: float = FORGET_EVERY_SECONDS,
) -> None:
    """`forget_expired` now and then every `every` seconds until `stop` is set (a service's
    background task; a failure, the database away, waits for the next turn)."""
    while not stop.is_set():
        try:
            forgotten = await forget_expired(sessionmaker)
            if forgotten:
                logger.info("forgot %s idempotency keys older than a day", forgotten)
        except Exception:
            logger.warning("could not forget old idempotency keys", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _replay(row: sa.Row[Any], digest: bytes, send: Send, seal: AnswerSeal | None) -> None:
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was used for a different request")
    if row.status is None:
        raise Conflict("the first request with this Idempotency-Key is still running")
    body = row.body or b""
    headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in json.loads(json.dumps(row.headers or []))
    ]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": row.status, "headers": headers})
    await send({"type": "http.response.body", "body": seal.unseal(body) if seal else body})
