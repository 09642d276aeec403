"""Organizations of the four kinds and their members."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from services.registry.api.deps import ContextDep
from services.registry.domain import organizations
from services.registry.schemas import (
    MemberCreate,
    MemberPublic,
    OrganizationCreate,
    OrganizationKind,
    OrganizationPublic,
    OrganizationUpdate,
)
from shared.concurrency import check_if_match, set_etag
from shared.errors import (
    BadRequest,
    NotPermitted,
    PreconditionFailed,
    PreconditionRequired,
    ResourceNotFound,
    responses,
)
from shared.pagination import CursorQuery, LimitQuery, Page, after_id, id_key, page_of
from shared.thai import AreaCode

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])


def _public(row: object) -> OrganizationPublic:
    return OrganizationPublic.model_validate(row, from_attributes=True)


@router.post(
    "",
    response_model=OrganizationPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(NotPermitted),
)
async def create_organization(
    ctx: ContextDep, body: OrganizationCreate, response: Response
) -> OrganizationPublic:
    """Create an operation centre, agency, sub-district team or mentor team."""
    organization = await organizations.create_organization(ctx, body)
    set_etag(response, organization.version)
    response.headers["Location"] = f"/v1/organizations/{organization.id}"
    return _public(organization)


@router.get("", response_model=Page[OrganizationPublic], responses=responses(BadRequest))
async def list_organizations(
    ctx: ContextDep,
    kind: OrganizationKind | None = None,
    area_code: Annotated[AreaCode | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[OrganizationPublic]:
    """Organizations in the caller's area and the centres and agencies above it."""
    rows = await organizations.list_organizations(
        ctx, kind=kind, area_code=area_code, after=after_id(cursor), limit=limit + 1
    )
    return page_of([_public(r) for r in rows], limit, id_key)


@router.get(
    "/{organization_id}", response_model=OrganizationPublic, responses=responses(ResourceNotFound)
)
async def get_organization(
    ctx: ContextDep, organization_id: UUID, response: Response
) -> OrganizationPublic:
    """One organization."""
    organization = await organizations.get_organization(ctx, organization_id)
    set_etag(response, organization.version)
    return _public(organization)


@router.patch(
    "/{organization_id}",
    response_model=OrganizationPublic,
    responses=responses(ResourceNotFound, NotPermitted, PreconditionFailed, PreconditionRequired),
)
async def update_organization(
    ctx: ContextDep,
    organization_id: UUID,
    body: OrganizationUpdate,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> OrganizationPublic:
    """Change an organization's name, parent or ministry (send `If-Match`)."""
    organization = await organizations.update_organization(
        ctx, organization_id, body, check_version=lambda v: check_if_match(if_match, v)
    )
    set_etag(response, organization.version)
    return _public(organization)


@router.post(
    "/{organization_id}/members",
    operation_id="addOrganizationMember",
    summary="Add Organization Member",
    response_model=MemberPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def add_member(ctx: ContextDep, organization_id: UUID, body: MemberCreate) -> MemberPublic:
    """Add an officer or volunteer to an organization."""
    member = await organizations.add_member(ctx, organization_id, body)
    return MemberPublic.model_validate(member, from_attributes=True)


@router.get(
    "/{organization_id}/members",
    operation_id="listOrganizationMembers",
    summary="List Organization Members",
    response_model=Page[MemberPublic],
    responses=responses(ResourceNotFound, NotPermitted, BadRequest),
)
async def list_members(
    ctx: ContextDep, organization_id: UUID, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[MemberPublic]:
    """The organization's members."""
    rows = await organizations.list_members(
        ctx, organization_id, after=after_id(cursor), limit=limit + 1
    )
    return page_of(
        [MemberPublic.model_validate(r, from_attributes=True) for r in rows], limit, id_key
    )


@router.delete(
    "/{organization_id}/members/{member_id}",
    operation_id="removeOrganizationMember",
    summary="Remove Organization Member",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def remove_member(ctx: ContextDep, organization_id: UUID, member_id: UUID) -> None:
    """Remove a member from an organization."""
    await organizations.remove_member(ctx, organization_id, member_id)
