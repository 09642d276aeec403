"""Operation centres, agencies, sub-district teams and mentor teams, with their members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.registry.domain.context import Context
from services.registry.models import Member, Organization
from services.registry.schemas import (
    MemberCreate,
    OrganizationCreate,
    OrganizationKind,
    OrganizationUpdate,
)
from shared.auth import OFFICER_ROLES, PERSONAL_DATA_ROLES
from shared.errors import FieldError, NotPermitted, ResourceNotFound, Unprocessable, refuse_nulls
from shared.events.registry import OrganizationChanged, OrganizationCreated
from shared.thai import COUNTRY, AreaLevel, area_contains, area_level, parent_code

K, L = OrganizationKind, AreaLevel
# The levels each kind of organization works at.
LEVELS: dict[OrganizationKind, frozenset[AreaLevel]] = {
    K.operation_center: frozenset({L.country, L.province, L.district}),
    K.agency: frozenset({L.country, L.province, L.district, L.subdistrict}),
    K.subdistrict_team: frozenset({L.subdistrict}),
    K.mentor_team: frozenset({L.subdistrict, L.village}),
}


def _ancestors(code: str) -> list[str]:
    chain: list[str] = []
    parent = parent_code(code)
    while parent is not None:
        chain.append(parent)
        parent = parent_code(parent)
    return chain


async def _visible(ctx: Context, organization_id: UUID) -> Organization:
    organization = await ctx.repo.get_organization(organization_id)
    if organization is None or not (
        ctx.caller.sees(organization.area_code)
        or organization.area_code in _ancestors(ctx.caller.area)
        or organization.area_code == ctx.caller.area
    ):
        raise ResourceNotFound(f"no organization {organization_id}")
    return organization


async def _managed(ctx: Context, organization_id: UUID) -> Organization:
    """An organization the caller may change: one inside its own scope."""
    ctx.caller.require(OFFICER_ROLES, "manage organizations")
    organization = await _visible(ctx, organization_id)
    if not ctx.caller.sees(organization.area_code):
        # The caller sees the centres and agencies above it, so hiding them would be a lie.
        raise NotPermitted(f"organization {organization_id} lies above your area")
    return organization


async def _check_parent(ctx: Context, parent_id: UUID | None) -> None:
    if parent_id is None:
        return
    try:
        await _visible(ctx, parent_id)
    except ResourceNotFound as exc:
        raise Unprocessable(
            f"no parent organization {parent_id}",
            errors=[FieldError(field="parent_id", message="unknown")],
        ) from exc


async def _check_no_cycle(ctx: Context, organization: Organization, parent_id: UUID) -> None:
    """Refuse a parent that lies below the organization: the hierarchy must stay a tree."""
    seen: set[UUID] = set()
    current: UUID | None = parent_id
    while current is not None and current not in seen:
        if current == organization.id:
            raise Unprocessable(
                "an organization cannot be placed under itself",
                errors=[FieldError(field="parent_id", message="would make a cycle")],
            )
        seen.add(current)
        above = await ctx.repo.get_organization(current)
        current = above.parent_id if above else None


def _changed(organization: Organization, changes: list[str]) -> OrganizationChanged:
    return OrganizationChanged(
        organization_id=organization.id,
        kind=organization.kind,
        name=organization.name,
        area_code=organization.area_code,
        parent_id=organization.parent_id,
        changed=changes,
    )


async def create_organization(ctx: Context, body: OrganizationCreate) -> Organization:
    """Create an organization inside the caller's scope, at a level its kind works at."""
    ctx.caller.require(OFFICER_ROLES, "create organizations")
    if area_level(body.area_code) not in LEVELS[body.kind]:
        raise Unprocessable(
            f"a {body.kind.value} does not work at the level of {body.area_code}",
            errors=[FieldError(field="area_code", message="wrong level")],
        )
    if not ctx.caller.sees(body.area_code):
        raise NotPermitted(f"area {body.area_code} is outside your scope")
    if body.area_code != COUNTRY and await ctx.repo.get_area(body.area_code) is None:
        raise Unprocessable(
            f"no area {body.area_code}",
            errors=[FieldError(field="area_code", message="unknown area")],
        )
    if body.ministry is not None and body.kind is not K.agency:
        raise Unprocessable(
            "only agencies have a ministry",
            errors=[FieldError(field="ministry", message="agencies only")],
        )
    await _check_parent(ctx, body.parent_id)
    organization = Organization(**body.model_dump())
    ctx.repo.add(organization)
    await ctx.repo.flush()
    ctx.publish(
        OrganizationCreated(
            organization_id=organization.id,
            kind=organization.kind,
            name=organization.name,
            area_code=organization.area_code,
            parent_id=organization.parent_id,
        ),
        subject=organization.id,
        area_code=organization.area_code,
    )
    return organization


async def get_organization(ctx: Context, organization_id: UUID) -> Organization:
    return await _visible(ctx, organization_id)


async def list_organizations(
    ctx: Context,
    *,
    kind: OrganizationKind | None,
    area_code: str | None,
    after: UUID | None,
    limit: int,
) -> Sequence[Organization]:
    """Organizations inside the scope, plus those above it (the caller's centres, agencies)."""
    prefix = ctx.caller.scope_prefix()
    ancestors = [*_ancestors(ctx.caller.area), ctx.caller.area] if prefix else []
    if area_code is not None and area_code != COUNTRY:
        if ctx.caller.sees(area_code):
            prefix, ancestors = area_code, []
        elif area_contains(area_code, ctx.caller.area):
            ancestors = [a for a in ancestors if area_contains(area_code, a)]
        else:
            return []
    return await ctx.repo.list_organizations(
        kind=kind.value if kind else None,
        area_prefix=prefix,
        ancestors=ancestors,
        after=after,
        limit=limit,
    )


async def update_organization(
    ctx: Context, organization_id: UUID, body: OrganizationUpdate, *, check_version: Any
) -> Organization:
    organization = await _managed(ctx, organization_id)
    check_version(organization.version)
    given = body.model_dump(exclude_unset=True)
    refuse_nulls(given, ("name",))
    if given.get("parent_id") is not None:
        await _check_parent(ctx, given["parent_id"])
        await _check_no_cycle(ctx, organization, given["parent_id"])
    if given.get("ministry") is not None and organization.kind != K.agency.value:
        raise Unprocessable(
            "only agencies have a ministry",
            errors=[FieldError(field="ministry", message="agencies only")],
        )
    changes = [k for k, v in given.items() if getattr(organization, k) != v]
    if changes:
        for key in changes:
            setattr(organization, key, given[key])
        organization.version += 1
        organization.updated_at = datetime.now(UTC)
        ctx.repo.add(organization)
        ctx.publish(
            _changed(organization, sorted(changes)),
            subject=organization.id,
            area_code=organization.area_code,
        )
        await ctx.repo.flush()
    return organization


async def add_member(ctx: Context, organization_id: UUID, body: MemberCreate) -> Member:
    organization = await _managed(ctx, organization_id)
    member = Member(organization_id=organization.id, **body.model_dump())
    ctx.repo.add(member)
    await ctx.repo.flush()
    ctx.publish(
        _changed(organization, ["members"]),
        subject=organization.id,
        area_code=organization.area_code,
    )
    return member


async def list_members(
    ctx: Context, organization_id: UUID, *, after: UUID | None, limit: int
) -> Sequence[Member]:
    ctx.caller.require(PERSONAL_DATA_ROLES, "see members")
    organization = await _visible(ctx, organization_id)
    return await ctx.repo.list_members(organization.id, after=after, limit=limit)


async def remove_member(ctx: Context, organization_id: UUID, member_id: UUID) -> None:
    organization = await _managed(ctx, organization_id)
    member = await ctx.repo.get_member(organization.id, member_id)
    if member is None:
        raise ResourceNotFound(f"no member {member_id}")
    await ctx.repo.delete(member)
    await ctx.repo.flush()
    ctx.publish(
        _changed(organization, ["members"]),
        subject=organization.id,
        area_code=organization.area_code,
    )
