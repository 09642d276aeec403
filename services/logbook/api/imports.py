"""Bulk imports of logbook history: upload a CSV file of visits and interventions, then follow
the job."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from services.logbook.imports.jobs import Importer
from services.logbook.schemas import LogbookImportPublic
from shared.auth import CallerDep
from shared.errors import (
    BadRequest,
    Conflict,
    NotPermitted,
    PayloadTooLarge,
    ResourceNotFound,
    UnsupportedMediaType,
    responses,
)
from shared.idempotency import KEY_PARAMETER
from shared.imports.api import (
    FilenameQuery,
    IdempotencyKeyHeader,
    check_media_type,
    csv_body,
    replay,
    start_upload,
)
from shared.pagination import CursorQuery, LimitQuery

router = APIRouter(prefix="/v1/imports/logbook", tags=["imports"])

LOGBOOK_IMPORT_PATH = "/v1/imports/logbook"
_CSV_BODY = {
    "requestBody": csv_body(
        "Visits and interventions as CSV, UTF-8 with or without a BOM, one entry "
        "a row (the format: services/logbook/imports/csvformat.py). Streamed: any size up to "
        "the service's import limit.",
        "kind,household_id,team_id,at,dimension,menu_code,amount_thb,status,"
        "completed_at,description,capitals,note,entry_key\n"
        "visit,0193a6b2-7d1e-7f20-8c3a-4b5d6e7f8091,0193a6a1-5b7e-7c3d-9f20-6f1d2c8e4a11,"
        "2024-03-05T10:30:00+07:00,,,,,,,34253,เยี่ยมบ้านครั้งแรก,old-v-1\n"
        "intervention,0193a6b2-7d1e-7f20-8c3a-4b5d6e7f8091,,2024-03-20T09:00:00+07:00,"
        "income,INC-02,1500,completed,2024-04-10T16:00:00+07:00,อบรมทำขนมไทย 5 วัน,,,"
        "old-i-1\n",
    ),
    "parameters": [KEY_PARAMETER],
}


def _importer(request: Request) -> Importer:
    importer: Importer = request.app.state.history_importer
    return importer


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LogbookImportPublic,
    responses=responses(NotPermitted, Conflict, PayloadTooLarge, UnsupportedMediaType),
    openapi_extra=_CSV_BODY,
)
async def import_logbook(
    request: Request,
    caller: CallerDep,
    response: Response,
    filename: FilenameQuery = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> LogbookImportPublic:
    """Import logbook history (visits and interventions) from a CSV file (province officers and
    above). The file streams into staging; the checks and the move-in go on in the background:
    follow them at the `Location`. A replay under the same `Idempotency-Key` with the same file
    answers the first import."""
    check_media_type(request)
    importer = _importer(request)
    if first := await replay(
        importer, caller, idempotency_key, request, response, LOGBOOK_IMPORT_PATH
    ):
        return await importer.summary(first, caller, limit=0)
    job_id = await importer.create(caller, filename, idempotency_key)
    location = f"{LOGBOOK_IMPORT_PATH}/{job_id}"
    await start_upload(importer, job_id, request, response, caller, location)
    return await importer.summary(job_id, caller, limit=0)


@router.get(
    "/{import_id}",
    response_model=LogbookImportPublic,
    responses=responses(ResourceNotFound, BadRequest),
)
async def get_logbook_import(
    request: Request,
    caller: CallerDep,
    import_id: UUID,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> LogbookImportPublic:
    """A history import's state and counts, with its rejected rows (line, column, reason) by
    page."""
    return await _importer(request).summary(import_id, caller, cursor=cursor, limit=limit)
