"""One error hierarchy for every service, written out as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import broken_off, database_unavailable
from shared.logging import REQUEST_ID_HEADER, REQUEST_ID_STATE, request_id_var

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://pinpoint.go.th/problems/"

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid field: where it is (as a JSON pointer-like path) and what is wrong."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class PinpointError(Exception):
    """Base of every error a service raises on purpose; each subclass is one problem type."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def openapi(cls) -> dict[int | str, dict[str, Any]]:
        """This error's entry for a route's `responses=`."""
        return {
            cls.status: {
                "model": Problem,
                "description": cls.title,
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        }


class BadRequest(PinpointError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthenticated(PinpointError):
    status, slug, title = 401, "unauthenticated", "Not authenticated"


class NotPermitted(PinpointError):
    status, slug, title = 403, "not-permitted", "Not permitted"


class ResourceNotFound(PinpointError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(PinpointError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidTransition(PinpointError):
    status, slug, title = 409, "invalid-transition", "Transition not allowed"


class PreconditionFailed(PinpointError):
    status, slug, title = 412, "precondition-failed", "The resource has changed"


class PayloadTooLarge(PinpointError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(PinpointError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(PinpointError):
    status, slug, title = 422, "validation-error", "Invalid input"


class PreconditionRequired(PinpointError):
    status, slug, title = 428, "precondition-required", "If-Match is required"


class ServiceUnavailable(PinpointError):
    status, slug, title = 503, "service-unavailable", "A service this needs is not answering"


def refuse_nulls(given: dict[str, Any], fields: tuple[str, ...]) -> None:
    """A PATCH may leave these fields out, but not set them to null."""
    nulled = [f for f in fields if f in given and given[f] is None]
    if nulled:
        raise Unprocessable(
            f"{', '.join(nulled)} cannot be null",
            errors=[FieldError(field=f, message="cannot be null") for f in nulled],
        )


def responses(*errors: type[PinpointError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may raise these errors."""
    merged: dict[int | str, dict[str, Any]] = {}
    every: tuple[type[PinpointError], ...] = (Unprocessable, Unauthenticated, *errors)
    for error in every:
        merged.update(error.openapi())
    return merged


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":  # body fields by their own name; others as query.limit
        parts = parts[1:]
    return ".".join(parts) or "body"


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def _field_error(error: Any) -> FieldError:
    if error["type"] == "json_invalid":
        # Its loc is ("body", <character offset>): the field is the body itself.
        reason = error.get("ctx", {}).get("error", "")
        return FieldError(
            field="body", message=f"{error['msg']}: {reason} (at character {error['loc'][-1]})"
        )
    return FieldError(field=_field_path(tuple(error["loc"])), message=str(error["msg"]))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error a service returns a problem+json document."""

    async def on_pinpoint_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PinpointError)
        return problem_response(
            request,
            status=exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=exc.headers,
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_field_error(e) for e in exc.errors()]
        return problem_response(
            request,
            status=422,
            slug=Unprocessable.slug,
            title=Unprocessable.title,
            detail="The request has invalid fields",
            errors=errors,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        return problem_response(
            request,
            status=exc.status_code,
            slug=slug,
            title=title,
            detail=str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this handler outside every middleware, after the request-ID
        # middleware has finished: take the ID back from the request's state.
        request_id: str | None = getattr(request.state, REQUEST_ID_STATE, None)
        if database_unavailable(exc) or broken_off(exc):
            # A restart or a failover, or another request at the same records at the same
            # moment: not a bug, and nothing was written. The client may send it again (with
            # its Idempotency-Key) a moment later.
            logger.warning("answered 503, to be tried again: %r", exc)
            return problem_response(
                request,
                status=ServiceUnavailable.status,
                slug=ServiceUnavailable.slug,
                title=ServiceUnavailable.title,
                detail=(
                    "the database is not answering; try again soon"
                    if database_unavailable(exc)
                    else "another request changed the same records at the same moment;"
                    " nothing was written, send it again"
                ),
                headers={
                    "Retry-After": "1",
                    **({REQUEST_ID_HEADER: request_id} if request_id else {}),
                },
            )
        token = request_id_var.set(request_id)
        try:
            logger.exception("unhandled error", exc_info=exc)
        finally:
            request_id_var.reset(token)
        return problem_response(
            request,
            status=500,
            slug="internal-error",
            title="Internal error",
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )

    app.add_exception_handler(PinpointError, on_pinpoint_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
