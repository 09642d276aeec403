"""History import jobs: stage a streamed CSV file, then check it and move it in, in the background.

A job is `queued` when made, `running` while its file streams into the staging table and while
it is checked and moved in, then `done` or `failed`. The move-in is one transaction: a job that
fails (an unreadable file, a crash, a restart) has imported nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.logbook.imports.csvformat import CsvFormatError, CsvParser
from services.logbook.imports.repository import ImportJobs, Outcome, Staging
from services.logbook.models import HistoryImportJob
from services.logbook.schemas import ImportState, LogbookImportPublic, RejectedRow
from shared.auth import OFFICER_ROLES, Caller
from shared.db import create_sessionmaker, transaction
from shared.errors import BadRequest, Conflict, NotPermitted, ResourceNotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.thai import AreaLevel, area_level

logger = logging.getLogger(__name__)

# How much of the file the parser takes at once (in a worker thread, off the event loop).
PARSE_BATCH_BYTES = 1024 * 1024
PROGRESS_EVERY_SECONDS = 1.0
# History is imported for whole provinces or the country: by officers who may write the
# logbook (DESIGN.md §5), with a province or the whole country as their area.
IMPORT_LEVELS = frozenset({AreaLevel.country, AreaLevel.province})

Progress = Callable[[int, int], None]  # bytes read, rows read


def may_import(caller: Caller) -> None:
    """Refuse a caller who may not import history (403)."""
    caller.require(OFFICER_ROLES, "import logbook history")
    if area_level(caller.area) not in IMPORT_LEVELS:
        raise NotPermitted("logbook history is imported at province level or above")


class Importer:
    """Runs the logbook's history imports; one per process, made in the app's lifespan."""

    def __init__(self, engine: AsyncEngine, *, namespace: str, follow_up_days: int) -> None:
        self.engine = engine
        self.sessionmaker = create_sessionmaker(engine)
        self.namespace = namespace
        self.follow_up_days = follow_up_days
        self._tasks: set[asyncio.Task[None]] = set()

    async def create(
        self, caller: Caller, filename: str | None = None, idempotency_key: str | None = None
    ) -> UUID:
        """A new, queued job for this caller; Conflict if its key names another job."""
        may_import(caller)
        job = HistoryImportJob(
            created_by=caller.subject,
            role=caller.role.value,
            scope=caller.area,
            filename=filename,
            idempotency_key=idempotency_key,
        )
        try:
            async with transaction(self.sessionmaker) as session:
                ImportJobs(session).add(job)
        except IntegrityError as exc:
            raise Conflict("an upload with this Idempotency-Key is still running") from exc
        return job.id

    async def replayed(self, caller: Caller, key: str, source: AsyncIterable[bytes]) -> UUID | None:
        """The job first made under this Idempotency-Key, if any, after checking that this
        upload is the same file (Conflict if it is not, or if the first is still uploading)."""
        may_import(caller)
        async with self.sessionmaker() as session:
            job = await ImportJobs(session).by_key(caller.subject, key)
        if job is None:
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

    async def stage(
        self, job_id: UUID, source: AsyncIterable[bytes], *, progress: Progress | None = None
    ) -> None:
        """Stream the file into the job's staging table; on any error the job fails, whole."""
        await self._update(job_id, state=ImportState.running.value)
        parser = CsvParser()
        digest = hashlib.sha256()
        last = time.monotonic()

        def take(data: bytes) -> bytes:
            digest.update(data)
            return parser.feed(data)

        async def parsed() -> AsyncIterator[bytes]:
            nonlocal last
            batch: list[bytes] = []
            size = 0
            async for chunk in source:
                batch.append(chunk)
                size += len(chunk)
                if size < PARSE_BATCH_BYTES:
                    continue
                out = await asyncio.to_thread(take, b"".join(batch))
                batch, size = [], 0
                if out:
                    yield out
                if progress is not None:
                    progress(parser.bytes, parser.rows)
                if time.monotonic() - last > PROGRESS_EVERY_SECONDS:
                    last = time.monotonic()
                    await self._update(job_id, bytes_read=parser.bytes, rows_read=parser.rows)
            out = await asyncio.to_thread(take, b"".join(batch))
            out += parser.finish()
            if out:
                yield out

        try:
            async with self.engine.begin() as conn:
                raw = await conn.get_raw_connection()
                await Staging(raw.driver_connection, job_id).copy_in(parsed())
        except CsvFormatError as exc:
            await self._fail(job_id, str(exc), bytes_read=parser.bytes, rows_read=parser.rows)
            raise
        except BaseException as exc:
            await self._fail(job_id, f"the upload stopped: {exc!r}", bytes_read=parser.bytes)
            raise
        if progress is not None:
            progress(parser.bytes, parser.rows)
        await self._update(
            job_id, bytes_read=parser.bytes, rows_read=parser.rows, body_sha256=digest.digest()
        )

    async def complete(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> Outcome:
        """Check the staged rows and move the valid ones in: one transaction, then done."""
        try:
            async with self.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                pg = raw.driver_connection
                assert pg is not None
                # On asyncpg itself: SQLAlchemy begins its own transaction only when it runs a
                # statement, so the raw connection would otherwise commit statement by statement.
                async with pg.transaction():
                    outcome = await Staging(pg, job_id).check_and_move(
                        scope_prefix=caller.scope_prefix(),
                        recorded_by=caller.subject,
                        namespace=self.namespace,
                        headers=headers,
                        follow_up_days=self.follow_up_days,
                    )
        except BaseException as exc:
            logger.exception("history import %s failed", job_id)
            await self._fail(job_id, f"the import failed and imported nothing: {exc}")
            raise
        finally:
            await self._drop(job_id)
        logger.info("history import %s done", job_id, extra={"timings": outcome.timings})
        await self._update(
            job_id,
            state=ImportState.done.value,
            rows_imported=outcome.rows_imported,
            rows_rejected=outcome.rows_rejected,
            visits_imported=outcome.visits_imported,
            interventions_imported=outcome.interventions_imported,
            finished_at=sa.func.now(),
        )
        return outcome

    def complete_in_background(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> None:
        """Check and move in while the service keeps answering; the job row tells the end."""

        async def run() -> None:
            with contextlib.suppress(Exception):  # already logged and recorded on the job
                await self.complete(job_id, caller, headers)

        task = asyncio.create_task(run(), name=f"history-import-{job_id}")
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
        """A whole import in the foreground (the CLI)."""
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

    async def summary(
        self, job_id: UUID, caller: Caller, *, cursor: str | None = None, limit: int = 100
    ) -> LogbookImportPublic:
        """The job as GET /v1/imports/logbook/{id} shows it, with a page of its rejected rows."""
        after = _after(cursor)
        async with self.sessionmaker() as session:
            jobs = ImportJobs(session)
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
        return LogbookImportPublic(
            id=job.id,
            kind=job.kind,
            state=ImportState(job.state),
            filename=job.filename,
            bytes_read=job.bytes_read,
            rows_read=job.rows_read,
            rows_imported=job.rows_imported,
            rows_rejected=job.rows_rejected,
            visits_imported=job.visits_imported,
            interventions_imported=job.interventions_imported,
            error=job.error,
            created_by=job.created_by,
            created_at=job.created_at,
            finished_at=job.finished_at,
            rejected=page,
            next_cursor=next_cursor,
        )

    async def _update(self, job_id: UUID, **values: Any) -> None:
        async with transaction(self.sessionmaker) as session:
            await ImportJobs(session).update(job_id, **values)

    async def _fail(self, job_id: UUID, error: str, **values: Any) -> None:
        await self._update(
            job_id,
            state=ImportState.failed.value,
            error=error,
            finished_at=sa.func.now(),
            idempotency_key=None,  # forgotten, so that a corrected retry under it can act
            **values,
        )
        await self._drop(job_id)

    async def _drop(self, job_id: UUID) -> None:
        async with self.engine.begin() as conn:
            raw = await conn.get_raw_connection()
            await Staging(raw.driver_connection, job_id).drop()


def _may_see(caller: Caller, job: HistoryImportJob) -> bool:
    """Its own imports, and (for officers) the imports made inside the caller's area."""
    return job.created_by == caller.subject or (
        caller.role in OFFICER_ROLES and caller.sees(job.scope)
    )


def _after(cursor: str | None) -> tuple[int, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        line, column = int(key["line"]), str(key["column"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("the cursor is not valid") from exc
    if not 0 <= line < 2**63:  # a line number as the table keeps it (bigint)
        raise BadRequest("the cursor is not valid")
    return line, column
