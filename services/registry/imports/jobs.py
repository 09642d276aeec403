"""The registry's import jobs: stage a streamed target list, then check it and move it in.

The job runner itself (the states, the background, failure) is shared: `shared.imports.jobs`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.imports.csvformat import CsvParser
from services.registry.imports.repository import ImportJobs, Outcome, Staging
from services.registry.models import ImportJob
from services.registry.schemas import ImportPublic
from shared.auth import OFFICER_ROLES, Caller
from shared.imports.jobs import ImportRunner, Progress
from shared.pii import CitizenIdVault


class Importer(ImportRunner[ImportJob]):
    """Runs the registry's imports; one per process, made in the app's lifespan."""

    logger = logging.getLogger(__name__)
    job_model = ImportJob

    def __init__(
        self,
        engine: AsyncEngine,
        vault: CitizenIdVault,
        *,
        namespace: str,
        on_moved_in: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine, namespace=namespace, on_moved_in=on_moved_in)
        self.vault = vault

    def may_import(self, caller: Caller) -> None:
        caller.require(OFFICER_ROLES, "import households")

    async def stage(
        self, job_id: UUID, source: AsyncIterable[bytes], *, progress: Progress | None = None
    ) -> None:
        """Stream the file into the job's staging table; on any error the job fails, whole."""
        parser = CsvParser(self.vault)
        await self._stage(job_id, source, parser, parser.feed, progress)
        await self._update(job_id, bytes_read=parser.bytes, rows_read=parser.rows)

    async def complete(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> Outcome:
        """Check the staged rows and move the valid ones in: one transaction, then done."""

        async def move(pg: Any) -> Outcome:
            return await Staging(pg, job_id).check_and_move(
                scope_prefix=caller.scope_prefix(),
                created_by=caller.subject,
                namespace=self.namespace,
                headers=headers,
            )

        def counts(outcome: Outcome) -> dict[str, int]:
            return {
                "rows_imported": outcome.rows_imported,
                "rows_rejected": outcome.rows_rejected,
                "households_imported": outcome.households_imported,
            }

        outcome = await self._move_in(job_id, move, counts)
        return outcome

    async def summary(
        self, job_id: UUID, caller: Caller, *, cursor: str | None = None, limit: int = 100
    ) -> ImportPublic:
        """The job as GET /v1/imports/{id} shows it, with a page of its rejected rows."""
        return await self._summary(ImportPublic, job_id, caller, cursor=cursor, limit=limit)

    def _jobs(self, session: AsyncSession) -> ImportJobs:
        return ImportJobs(session)

    def _staging(self, pg: Any, job_id: UUID) -> Staging:
        return Staging(pg, job_id)
