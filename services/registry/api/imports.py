"""Bulk imports of the target list: upload a CSV file, then follow the job."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from services.registry.imports.jobs import Importer
from services.registry.schemas import ImportPublic
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

router = APIRouter(prefix="/v1/imports", tags=["imports"])

HOUSEHOLDS_PATH = "/v1/imports/households"
JOBS_PATH = "/v1/imports"  # each job at JOBS_PATH/{id}
_CSV_BODY = {
    "requestBody": csv_body(
        "The target list as CSV, UTF-8 with or without a BOM "
        "(docs/import-format.md). Streamed: any size up to the service's import limit.",
        "house_code,household_key,area_code,address,survey_year,"
        "failed_indicators,lat,lon,citizen_id,title,first_name,last_name,sex,birth_date,"
        "relation,disability,welfare_card\n"
        "24010000001,,240104,352 หมู่ 1,2565,2560-17,,,4728095894300,นางสาว,ศิริพร,แสงทอง,"
        "female,1971-05-14,head,false,true\n",
    ),
    "parameters": [KEY_PARAMETER],
}


def _importer(request: Request) -> Importer:
    importer: Importer = request.app.state.importer
    return importer


@router.post(
    "/households",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportPublic,
    responses=responses(NotPermitted, Conflict, PayloadTooLarge, UnsupportedMediaType),
    openapi_extra=_CSV_BODY,
)
async def import_households(
    request: Request,
    caller: CallerDep,
    response: Response,
    filename: FilenameQuery = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ImportPublic:
    """Import target households from a CSV file (officers). The file streams into staging;
    the checks and the move-in go on in the background: follow them at the `Location`. A
    replay under the same `Idempotency-Key` with the same file answers the first import."""
    check_media_type(request)
    importer = _importer(request)
    if first := await replay(importer, caller, idempotency_key, request, response, JOBS_PATH):
        return await importer.summary(first, caller, limit=0)
    job_id = await importer.create(caller, filename, idempotency_key)
    await start_upload(importer, job_id, request, response, caller, f"{JOBS_PATH}/{job_id}")
    return await importer.summary(job_id, caller, limit=0)


@router.get(
    "/{import_id}",
    response_model=ImportPublic,
    responses=responses(ResourceNotFound, BadRequest),
)
async def get_import(
    request: Request,
    caller: CallerDep,
    import_id: UUID,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> ImportPublic:
    """An import's state and counts, with its rejected rows (line, column, reason) by page."""
    return await _importer(request).summary(import_id, caller, cursor=cursor, limit=limit)
