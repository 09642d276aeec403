"""Households: registration, details, status, members, mentor team and audit trail."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from services.registry.api.deps import ContextDep
from services.registry.domain import households
from services.registry.schemas import (
    AuditEntryPublic,
    HouseholdCreate,
    HouseholdDetail,
    HouseholdPublic,
    HouseholdStatus,
    HouseholdUpdate,
    MentorTeamAssignment,
    MentorTeamBulkAssignment,
    MentorTeamBulkResult,
    PersonCreate,
    PersonPublic,
    StatusChangePublic,
    StatusTransition,
)
from shared.concurrency import check_if_match, set_etag
from shared.errors import (
    BadRequest,
    Conflict,
    InvalidTransition,
    NotPermitted,
    PreconditionFailed,
    PreconditionRequired,
    ResourceNotFound,
    responses,
)
from shared.indicators import Dimension
from shared.pagination import CursorQuery, LimitQuery, Page, after_id, id_key, page_of
from shared.thai import AreaCode

router = APIRouter(prefix="/v1/households", tags=["households"])

IfMatch = Annotated[str | None, Header(description="The ETag last read")]


@router.post(
    "",
    response_model=HouseholdDetail,
    status_code=status.HTTP_201_CREATED,
    responses=responses(NotPermitted, Conflict),
)
async def register_household(
    ctx: ContextDep, body: HouseholdCreate, response: Response
) -> HouseholdDetail:
    """Register a target household, optionally with its members; it starts as `target`."""
    detail = await households.register_household(ctx, body)
    set_etag(response, 1)
    response.headers["Location"] = f"/v1/households/{detail.id}"
    return detail


@router.get("", response_model=Page[HouseholdPublic], responses=responses(NotPermitted, BadRequest))
async def list_households(
    ctx: ContextDep,
    area_code: Annotated[AreaCode | None, Query(description="Matches by prefix")] = None,
    status: HouseholdStatus | None = None,
    dimension: Annotated[Dimension | None, Query(description="Fails an indicator of it")] = None,
    team_id: UUID | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=100,
            pattern=r"^[^\x00]*$",
            description="Thai names or address, by similarity",
        ),
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[HouseholdPublic]:
    """Households inside the caller's area, filtered."""
    rows = await households.list_households(
        ctx,
        area_code=area_code,
        status=status,
        dimension=dimension,
        team_id=team_id,
        q=q,
        after=after_id(cursor),
        limit=limit + 1,
    )
    return page_of(rows, limit, id_key)


@router.get(
    "/{household_id}",
    response_model=HouseholdDetail,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def get_household(ctx: ContextDep, household_id: UUID, response: Response) -> HouseholdDetail:
    """One household with its members."""
    detail, version = await households.get_household(ctx, household_id)
    set_etag(response, version)
    return detail


@router.patch(
    "/{household_id}",
    response_model=HouseholdDetail,
    responses=responses(
        ResourceNotFound, NotPermitted, Conflict, PreconditionFailed, PreconditionRequired
    ),
)
async def update_household(
    ctx: ContextDep,
    household_id: UUID,
    body: HouseholdUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> HouseholdDetail:
    """Change a household's details (send `If-Match` with the ETag you read)."""
    detail, version = await households.update_household(
        ctx, household_id, body, check_version=lambda v: check_if_match(if_match, v)
    )
    set_etag(response, version)
    return detail


@router.post(
    "/{household_id}/status",
    operation_id="changeHouseholdStatus",
    summary="Change Household Status",
    response_model=StatusChangePublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted, InvalidTransition),
)
async def change_status(
    ctx: ContextDep, household_id: UUID, body: StatusTransition
) -> StatusChangePublic:
    """Move the household to another status, if the transition is allowed."""
    change = await households.change_status(ctx, household_id, body)
    return StatusChangePublic.model_validate(change, from_attributes=True)


@router.get(
    "/{household_id}/status-history",
    operation_id="listHouseholdStatusChanges",
    summary="List Household Status Changes",
    response_model=list[StatusChangePublic],
    responses=responses(ResourceNotFound, NotPermitted),
)
async def status_history(ctx: ContextDep, household_id: UUID) -> list[StatusChangePublic]:
    """Every status the household has had: who, when and why."""
    rows = await households.status_history(ctx, household_id)
    return [StatusChangePublic.model_validate(r, from_attributes=True) for r in rows]


@router.get(
    "/{household_id}/audit",
    operation_id="listHouseholdAuditEntries",
    summary="List Household Audit Entries",
    response_model=Page[AuditEntryPublic],
    responses=responses(ResourceNotFound, NotPermitted, BadRequest),
)
async def audit_trail(
    ctx: ContextDep, household_id: UUID, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[AuditEntryPublic]:
    """Every change to the household and its members: old and new values, who, when."""
    rows = await households.audit_trail(ctx, household_id, after=after_id(cursor), limit=limit)
    return page_of(
        [AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows], limit, id_key
    )


@router.put(
    "/{household_id}/mentor-team",
    response_model=HouseholdPublic,
    responses=responses(ResourceNotFound, NotPermitted, PreconditionFailed),
)
async def assign_mentor_team(
    ctx: ContextDep,
    household_id: UUID,
    body: MentorTeamAssignment,
    response: Response,
    if_match: IfMatch = None,
) -> HouseholdPublic:
    """Assign the household to a mentor team of its sub-district (null unassigns).

    `If-Match` is optional here; when sent, a stale ETag is refused with 412.
    """
    household, version = await households.assign_mentor_team(
        ctx,
        household_id,
        body.team_id,
        check_version=lambda v: None if if_match is None else check_if_match(if_match, v),
    )
    set_etag(response, version)
    return household


@router.post(
    "/mentor-team",
    operation_id="assignMentorTeamToHouseholds",
    summary="Assign Mentor Team To Households",
    response_model=MentorTeamBulkResult,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def assign_mentor_team_to_many(
    ctx: ContextDep, body: MentorTeamBulkAssignment
) -> MentorTeamBulkResult:
    """Assign up to 1,000 households to one mentor team of their sub-district (null unassigns),
    all or none: one that does not exist or is outside the caller's area is a 404, and a team
    of another sub-district a 422, and then no household changes team. Each household changed
    is audited and announced as when assigned alone."""
    changed = await households.assign_mentor_team_to_many(ctx, body.household_ids, body.team_id)
    return MentorTeamBulkResult(
        team_id=body.team_id, households=len(body.household_ids), changed=changed
    )


@router.post(
    "/{household_id}/members",
    operation_id="addHouseholdMember",
    summary="Add Household Member",
    response_model=PersonPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted, Conflict),
)
async def add_member(
    ctx: ContextDep, household_id: UUID, body: PersonCreate, response: Response
) -> PersonPublic:
    """Add a member to the household."""
    person = await households.add_member(ctx, household_id, body)
    response.headers["Location"] = f"/v1/persons/{person.id}"
    set_etag(response, 1)
    return person


@router.get(
    "/{household_id}/members",
    operation_id="listHouseholdMembers",
    summary="List Household Members",
    response_model=list[PersonPublic],
    responses=responses(ResourceNotFound, NotPermitted),
)
async def list_members(ctx: ContextDep, household_id: UUID) -> list[PersonPublic]:
    """The household's members."""
    return await households.list_members(ctx, household_id)
