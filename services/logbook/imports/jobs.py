"""The logbook's history import jobs: stage a streamed CSV file, then check it and move it in.

The job runner itself (the states, the background, failure) is shared: `shared.imports.jobs`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.imports.csvformat import CsvParser
from services.logbook.imports.repository import ImportJobs, Outcome, Staging
from services.logbook.models import HistoryImportJob
from services.logbook.schemas import LogbookImportPublic
from shared.auth import OFFICER_ROLES, Caller
from shared.errors import NotPermitted
from shared.imports.jobs import ImportRunner, Progress
from shared.thai import AreaLevel, area_level

# History is imported for whole provinces or the country: by officers who may write the
# logbook (DESIGN.md §5), with a province or the whole country as their area.
IMPORT_LEVELS = frozenset({AreaLevel.country, AreaLevel.province})


class Importer(ImportRunner[HistoryImportJob]):
    """Runs the logbook's history imports; one per process, made in the app's lifespan."""

    label = "history import"
    job_model = HistoryImportJob
    logger = logging.getLogger(__name__)

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        namespace: str,
        follow_up_days: int,
        on_moved_in: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine, namespace=namespace, on_moved_in=on_moved_in)
        self.follow_up_days = follow_up_days

    def may_import(self, caller: Caller) -> None:
        """Refuse a caller who may not import history (403)."""
        caller.require(OFFICER_ROLES, "import logbook history")
        if area_level(caller.area) not in IMPORT_LEVELS:
            raise NotPermitted("logbook history is imported at province level or above")

    async def stage(
        self, job_id: UUID, source: AsyncIterable[bytes], *, progress: Progress | None = None
    ) -> None:
        """Stream the file into the job's staging table; on any error the job fails, whole."""
        parser = CsvParser()
        await self._stage(job_id, source, parser, parser.feed, progress)
        await self._update(job_id, bytes_read=parser.bytes, rows_read=parser.rows)

    async def complete(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> Outcome:
        """Check the staged rows and move the valid ones in: one transaction, then done."""

        async def move(pg: Any) -> Outcome:
            return await Staging(pg, job_id).check_and_move(
                scope_prefix=caller.scope_prefix(),
                recorded_by=caller.subject,
                namespace=self.namespace,
                headers=headers,
                follow_up_days=self.follow_up_days,
            )

        def counts(outcome: Outcome) -> dict[str, int]:
            return {
                "rows_imported": outcome.rows_imported,
                "rows_rejected": outcome.rows_rejected,
                "visits_imported": outcome.visits_imported,
                "interventions_imported": outcome.interventions_imported,
            }

        outcome = await self._move_in(job_id, move, counts)
        self.logger.info("history import %s done", job_id, extra={"timings": outcome.timings})
        return outcome

    async def summary(
        self, job_id: UUID, caller: Caller, *, cursor: str | None = None, limit: int = 100
    ) -> LogbookImportPublic:
        """The job as GET /v1/imports/logbook/{id} shows it, with a page of its rejected rows."""
        return await self._summary(LogbookImportPublic, job_id, caller, cursor=cursor, limit=limit)

    def _jobs(self, session: AsyncSession) -> ImportJobs:
        return ImportJobs(session)

    def _staging(self, pg: Any, job_id: UUID) -> Staging:
        return Staging(pg, job_id)
