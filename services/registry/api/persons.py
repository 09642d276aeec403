"""Persons: read, change, and find by citizen ID."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from services.registry.api.deps import ContextDep
from services.registry.domain import households
from services.registry.schemas import PersonLookup, PersonPublic, PersonUpdate
from shared.concurrency import check_if_match, set_etag
from shared.errors import (
    Conflict,
    NotPermitted,
    PreconditionFailed,
    PreconditionRequired,
    ResourceNotFound,
    problem_response,
    responses,
)

router = APIRouter(prefix="/v1/persons", tags=["persons"])

# A read sent as POST (a citizen ID has no place in a URL): see `shared/idempotency.py`.
LOOKUP_PATH = "/v1/persons/lookup"


@router.post(
    LOOKUP_PATH.removeprefix(router.prefix),
    response_model=PersonPublic,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def lookup_person(
    ctx: ContextDep, body: PersonLookup, request: Request
) -> PersonPublic | JSONResponse:
    """Find a person by citizen ID inside your area; every lookup is logged with its reason.

    A lookup changes nothing: sent again with the same `Idempotency-Key`, it looks again (and
    is logged again) rather than replaying the first answer.
    """
    person = await households.lookup_person(ctx, body.citizen_id, body.reason)
    if person is None:
        return problem_response(
            request,
            status=ResourceNotFound.status,
            slug=ResourceNotFound.slug,
            title=ResourceNotFound.title,
            detail="no person with that citizen ID in your area",
        )
    return person


@router.get(
    "/{person_id}", response_model=PersonPublic, responses=responses(ResourceNotFound, NotPermitted)
)
async def get_person(ctx: ContextDep, person_id: UUID, response: Response) -> PersonPublic:
    """One person."""
    person, version = await households.get_person(ctx, person_id)
    set_etag(response, version)
    return person


@router.patch(
    "/{person_id}",
    response_model=PersonPublic,
    responses=responses(
        ResourceNotFound, NotPermitted, Conflict, PreconditionFailed, PreconditionRequired
    ),
)
async def update_person(
    ctx: ContextDep,
    person_id: UUID,
    body: PersonUpdate,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> PersonPublic:
    """Change a person's details (send `If-Match` with the ETag you read)."""
    person, version = await households.update_person(
        ctx, person_id, body, check_version=lambda v: check_if_match(if_match, v)
    )
    set_etag(response, version)
    return person
