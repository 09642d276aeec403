"""What the services' import jobs share: staging a streamed file, the state, the background.

A job is `queued` when made, `running` while its file streams into the staging table and while
it is checked and moved in, then `done` or `failed`. The move-in is one transaction, and the job
becomes `done` in it: a job that is not done (an unreadable file, a crash, a restart) has
imported nothing. A running job's row moves at least every `HEARTBEAT_SECONDS`; one that has not
moved for `ABANDONED_AFTER_SECONDS` has no process behind it (its service stopped) and is failed
when it is next looked at, which frees its Idempotency-Key (a job failed so can no longer
commit). A service's `Importer` subclasses `ImportRunner` and adds what is its own: who may
import, its parser, its move-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.auth import OFFICER_ROLES, Caller
from shared.db import create_sessionmaker, transaction
from shared.errors import BadRequest, Conflict, ResourceNotFound
from shared.imports.csvparser import CsvFormatError, CsvParser
from shared.imports.schemas import ImportState, RejectedRow
from shared.pagination import decode_cursor, encode_cursor

# How much of the file the parser takes at once (in a worker thread, off the event loop).
PARSE_BATCH_BYTES = 1024 * 1024
PROGRESS_EVERY_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
ABANDONED_AFTER_SECONDS = 60.0

Progress = Callable[[int, int], None]  # bytes read, rows read
Outcome = TypeVar("Outcome")


class JobRow(Protocol):
    """An import job as its table keeps it."""

    @property
    def id(self) -> UUID: ...
    @property
    def created_by(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def body_sha256(self) -> bytes | None: ...
    def model_dump(self) -> dict[str, Any]: ...


JobT = TypeVar("JobT", bound=JobRow)
PublicT = TypeVar("PublicT", bound=BaseModel)
JobT_co = TypeVar("JobT_co", bound=JobRow, covariant=True)


class Rejection(Protocol):
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> str: ...
    @property
    def reason(self) -> str: ...


class JobRows(Protocol[JobT_co]):
    """A service's repository of job rows and their rejected rows."""

    async def get(self, job_id: UUID) -> JobT_co | None: ...
    async def by_key(self, created_by: str, key: str) -> JobT_co | None: ...
    def add(self, job: Any) -> None: ...
    async def update(self, job_id: UUID, **values: Any) -> None: ...
    async def rejections(
        self, job_id: UUID, *, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Rejection]: ...


class StagingTable(Protocol):
    """A job's staging table on a raw asyncpg connection."""

    async def copy_in(self, source: AsyncIterable[bytes]) -> None: ...
    async def drop(self) -> None: ...


class ImportRunner(ABC, Generic[JobT]):
    """Runs a service's imports; one per process, made in the app's lifespan."""

    # "import" or "history import": in the log and in the background task's name.
    label = "import"
    job_model: ClassVar[type[SQLModel]]  # the service's job rows
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)  # the service's own, better

    def __init__(
        self, engine: AsyncEngine, *, namespace: str, on_moved_in: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.sessionmaker = create_sessionmaker(engine)
        self.namespace = namespace
        # Called once a move-in has committed: the service's outbox relay is woken, and
        # publishes the import's events at once rather than at its next look.
        self.on_moved_in = on_moved_in
        self._tasks: set[asyncio.Task[None]] = set()

    @abstractmethod
    def _jobs(self, session: AsyncSession) -> JobRows[JobT]:
        """The service's repository of job rows."""

    @abstractmethod
    def _staging(self, pg: Any, job_id: UUID) -> StagingTable:
        """The service's staging table of this job."""

    @abstractmethod
    def may_import(self, caller: Caller) -> None:
        """Refuse a caller who may not import here (NotPermitted)."""

    @property
    def job_table(self) -> str:
        """The job rows' table, for the statements on the raw connection."""
        table: str = self.job_model.__tablename__  # type: ignore[assignment]
        return table

    async def create(
        self, caller: Caller, filename: str | None = None, idempotency_key: str | None = None
    ) -> UUID:
        """A new, queued job for this caller; Conflict if its key names a job already (made
        meanwhile: `replayed` found none)."""
        self.may_import(caller)
        job: JobRow = self.job_model(  # type: ignore[assignment]
            created_by=caller.subject,
            role=caller.role.value,
            scope=caller.area,
            filename=filename,
            idempotency_key=idempotency_key,
        )
        try:
            async with transaction(self.sessionmaker) as session:
                self._jobs(session).add(job)
        except IntegrityError as exc:
            if "idempotency_key" not in str(exc.orig):  # the key's unique index, by its name
                raise
            raise Conflict("an upload with this Idempotency-Key is still running") from exc
        return job.id

    async def replayed(self, caller: Caller, key: str, source: AsyncIterable[bytes]) -> UUID | None:
        """The job first made under this Idempotency-Key, if any, after checking that this
        upload is the same file (Conflict if it is not, or if the first is still uploading)."""
        self.may_import(caller)
        async with self.sessionmaker() as session:
            job = await self._jobs(session).by_key(caller.subject, key)
        if job is None or await self._fail_if_abandoned(job.id):
            return None
        if job.body_sha256 is None:
            raise Conflict(
                "this Idempotency-Key was used for an upload that is still running or failed"
            )
        digest = hashlib.sha256()
        async for chunk in source:
            digest.update(chunk)
        if digest.digest() != job.body_sha256:
            raise Conflict("this Idempotency-Key was used for a different file")
        return job.id

    @abstractmethod
    async def stage(
        self, job_id: UUID, source: AsyncIterable[bytes], *, progress: Progress | None = None
    ) -> None:
        """Stream the file into the job's staging table; on any error the job fails, whole."""

    @abstractmethod
    async def complete(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> Any:
        """Check the staged rows and move the valid ones in: one transaction, then done."""

    async def _stage(
        self,
        job_id: UUID,
        source: AsyncIterable[bytes],
        parser: CsvParser,
        feed: Callable[[bytes], bytes],
        progress: Progress | None,
    ) -> None:
        """Stream the file through `feed` (the parser's, or one wrapping it) into staging,
        and keep the file's hash on the job (a replay under its key must send the same)."""
        await self._update(job_id, state=ImportState.running.value)
        last = time.monotonic()
        digest = hashlib.sha256()

        def fed(data: bytes) -> bytes:
            digest.update(data)
            return feed(data)

        async def parsed() -> AsyncIterator[bytes]:
            nonlocal last
            batch: list[bytes] = []
            size = 0
            async for chunk in source:
                batch.append(chunk)
                size += len(chunk)
                if size < PARSE_BATCH_BYTES:
                    continue
                out = await asyncio.to_thread(fed, b"".join(batch))
                batch, size = [], 0
                if out:
                    yield out
                if progress is not None:
                    progress(parser.bytes, parser.rows)
                if time.monotonic() - last > PROGRESS_EVERY_SECONDS:
                    last = time.monotonic()
                    await self._update(job_id, bytes_read=parser.bytes, rows_read=parser.rows)
            out = await asyncio.to_thread(fed, b"".join(batch))
            out += parser.finish()
            if out:
                yield out

        try:
            async with self.engine.begin() as conn, self._beating(job_id):
                raw = await conn.get_raw_connection()
                await self._staging(raw.driver_connection, job_id).copy_in(parsed())
        except CsvFormatError as exc:
            await self._fail(job_id, str(exc), bytes_read=parser.bytes, rows_read=parser.rows)
            raise
        except BaseException as exc:
            await self._fail(job_id, f"the upload stopped: {exc!r}", bytes_read=parser.bytes)
            raise
        await self._update(job_id, body_sha256=digest.digest())
        if progress is not None:
            progress(parser.bytes, parser.rows)

    async def _move_in(
        self,
        job_id: UUID,
        move: Callable[[Any], Awaitable[Outcome]],
        counts: Callable[[Outcome], dict[str, int]],
    ) -> Outcome:
        """Run `move` on the raw connection in one transaction, which also makes the job `done`
        with its `counts`; on any error the job fails."""
        try:
            async with self.engine.connect() as conn, self._beating(job_id):
                raw = await conn.get_raw_connection()
                pg = raw.driver_connection
                assert pg is not None
                # On asyncpg itself: SQLAlchemy begins its own transaction only when it runs a
                # statement, so the raw connection would otherwise commit statement by statement.
                async with pg.transaction():
                    outcome = await move(pg)
                    await self._done(pg, job_id, counts(outcome))
            if self.on_moved_in is not None:
                self.on_moved_in()  # committed
        except BaseException as exc:
            self.logger.exception("%s %s failed", self.label, job_id)
            await self._fail(job_id, f"the import failed and imported nothing: {exc}")
            raise
        finally:
            await self._drop(job_id)
        return outcome

    async def _done(self, pg: Any, job_id: UUID, counts: dict[str, int]) -> None:
        """The job done, in the move-in's transaction; unless it was failed meanwhile (taken
        for abandoned), which undoes the move-in."""
        columns = ", ".join(f"{name} = ${n}" for n, name in enumerate(counts, start=2))
        # The clock's time: `now()` is when the move-in's transaction began, minutes ago.
        tag = await pg.execute(
            f"UPDATE {self.job_table} SET state = 'done', finished_at = clock_timestamp(),"
            f" updated_at = clock_timestamp(), {columns} WHERE id = $1 AND state = 'running'",
            job_id,
            *counts.values(),
        )
        if tag != "UPDATE 1":
            raise RuntimeError("the job was failed while it moved in (taken for abandoned)")

    @contextlib.asynccontextmanager
    async def _beating(self, job_id: UUID) -> AsyncIterator[None]:
        """Move the job's row every `HEARTBEAT_SECONDS` while this process works on it (a slow
        upload, a long move-in): it is not abandoned."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                try:
                    await self._update(job_id)
                except Exception:
                    self.logger.warning("%s %s: no heartbeat", self.label, job_id, exc_info=True)

        beating = asyncio.create_task(beat())
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _fail_if_abandoned(self, job_id: UUID) -> bool:
        """Fail the job if it is neither done nor failed and its row has not moved for
        `ABANDONED_AFTER_SECONDS` (no process runs it: it imported nothing); whether it did."""
        async with self.engine.begin() as conn:
            failed = await conn.execute(
                sa.text(
                    f"UPDATE {self.job_table} SET state = 'failed', error = :error,"
                    " idempotency_key = NULL, finished_at = now(), updated_at = now()"
                    " WHERE id = :id AND state IN ('queued', 'running')"
                    " AND updated_at < now() - make_interval(secs => :after)"
                ),
                {
                    "id": job_id,
                    "error": "the import stopped with its service before it finished, "
                    "and imported nothing",
                    "after": ABANDONED_AFTER_SECONDS,
                },
            )
        if not failed.rowcount:
            return False
        await self._drop(job_id)
        return True

    def complete_in_background(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> None:
        """Check and move in while the service keeps answering; the job row tells the end."""

        async def run() -> None:
            with contextlib.suppress(Exception):  # already logged and recorded on the job
                await self.complete(job_id, caller, headers)

        task = asyncio.create_task(run(), name=f"{self.label.replace(' ', '-')}-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(
        self,
        caller: Caller,
        source: AsyncIterable[bytes],
        *,
        filename: str | None = None,
        headers: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> UUID:
        """A whole import in the foreground (the CLI and the benchmark)."""
        job_id = await self.create(caller, filename)
        await self.stage(job_id, source, progress=progress)
        await self.complete(job_id, caller, headers or {})
        return job_id

    async def wait(self) -> None:
        """Until every background job has ended (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop background jobs (each fails, having imported nothing)."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()

    async def _summary(
        self, public: type[PublicT], job_id: UUID, caller: Caller, *, cursor: str | None, limit: int
    ) -> PublicT:
        """The job as its service shows it (ResourceNotFound unless the caller may see it), with
        a page of its rejected rows and the cursor of the next."""
        after = _after(cursor)
        await self._fail_if_abandoned(job_id)  # shown as it is: failed, not running for ever
        async with self.sessionmaker() as session:
            jobs = self._jobs(session)
            job = await jobs.get(job_id)
            if job is None or not _may_see(caller, job):
                raise ResourceNotFound(f"no import {job_id}")
            rows = await jobs.rejections(job_id, after=after, limit=limit + 1)
        page = [RejectedRow(line=r.line, column=r.column, reason=r.reason) for r in rows[:limit]]
        next_cursor = (
            encode_cursor({"line": page[-1].line, "column": page[-1].column})
            if len(rows) > limit and page
            else None
        )
        return public.model_validate(
            {**job.model_dump(), "rejected": page, "next_cursor": next_cursor}
        )

    async def _update(self, job_id: UUID, **values: Any) -> None:
        async with transaction(self.sessionmaker) as session:
            await self._jobs(session).update(job_id, **values)

    async def _fail(self, job_id: UUID, error: str, **values: Any) -> None:
        # The key is forgotten, so that a corrected retry under it can act.
        await self._update(
            job_id,
            state=ImportState.failed.value,
            error=error,
            finished_at=sa.func.now(),
            idempotency_key=None,
            **values,
        )
        await self._drop(job_id)

    async def _drop(self, job_id: UUID) -> None:
        async with self.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            await self._staging(raw.driver_connection, job_id).drop()


def _may_see(caller: Caller, job: JobRow) -> bool:
    """Its own imports, and (for officers) the imports made inside the caller's area."""
    return job.created_by == caller.subject or (
        caller.role in OFFICER_ROLES and caller.sees(job.scope)
    )


def _after(cursor: str | None) -> tuple[int, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    line, column = key.get("line"), key.get("column")
    # A line number as the table keeps it (bigint), a column name as text PostgreSQL keeps
    # (no NUL, no lone surrogate): anything else, an infinite or fractional line among them,
    # is not a cursor this service made.
    if (
        type(line) is not int
        or not 0 <= line < 2**63
        or not isinstance(column, str)
        or "\x00" in column
        or not column.isprintable()
    ):
        raise BadRequest("the cursor is not valid")
    return line, column
