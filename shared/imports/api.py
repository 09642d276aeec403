"""What the services' import routes share: the CSV request body, its checks, the upload."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Request, Response
from starlette.requests import ClientDisconnect

from shared.auth import Caller
from shared.errors import BadRequest, FieldError, Unprocessable, UnsupportedMediaType
from shared.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from shared.imports.csvparser import CsvFormatError
from shared.imports.jobs import ImportRunner
from shared.outbox import trace_headers

# PostgreSQL text cannot hold U+0000: a field error, not a 500 when the job is stored.
FilenameQuery = Annotated[
    str | None, Query(pattern=r"^[^\x00]*$", description="The file's name, kept on the job")
]


def csv_body(description: str, example: str) -> dict[str, Any]:
    """The OpenAPI request body of a CSV upload (the route reads the stream itself)."""
    return {
        "required": True,
        "description": description,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}, "example": example}
        },
    }


def check_media_type(request: Request) -> None:
    """UnsupportedMediaType unless the body is CSV in UTF-8."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType("send the file as text/csv")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if params.strip() and charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("send the file as UTF-8 (charset=utf-8)")


async def replay(
    importer: ImportRunner[Any],
    caller: Caller,
    key: str | None,
    request: Request,
    response: Response,
    jobs_path: str,
) -> UUID | None:
    """The job first made under this `Idempotency-Key` (the same file again): the answer points
    at it (under `jobs_path`) and says it is a replay. None without a key, or for a key not
    used yet."""
    if key is None:
        return None
    try:
        first = await importer.replayed(caller, key, request.stream())
    except ClientDisconnect as exc:
        raise BadRequest("the upload was interrupted; nothing was imported") from exc
    if first is not None:
        response.headers["Location"] = f"{jobs_path}/{first}"
        response.headers[REPLAYED_HEADER] = "true"
    return first


# Documented once, as the shared parameter: streamed bodies pass the idempotency middleware
# untouched, and an import route keeps the key itself (`replay`).
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        include_in_schema=False,
    ),
]


async def start_upload(
    importer: ImportRunner[Any],
    job_id: UUID,
    request: Request,
    response: Response,
    caller: Caller,
    location: str,
) -> None:
    """Stream the request's body into the job's staging, then leave the checks and the move-in
    to the background and point the answer at the job. An unreadable file or a broken upload
    is the client's error (the job, failed, stays at `location`)."""
    await _stage(importer, job_id, request, location)
    importer.complete_in_background(job_id, caller, trace_headers(request))
    response.headers["Location"] = location


async def _stage(
    importer: ImportRunner[Any], job_id: UUID, request: Request, location: str
) -> None:
    try:
        await importer.stage(job_id, request.stream())
    except CsvFormatError as exc:
        raise Unprocessable(
            f"import {job_id} failed, nothing was imported: {exc}",
            errors=[FieldError(field=exc.column or f"line {exc.line}", message=exc.message)],
            headers={"Location": location},
        ) from exc
    except ClientDisconnect as exc:
        raise BadRequest("the upload was interrupted; nothing was imported") from exc
