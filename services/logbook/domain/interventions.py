"""Interventions: planned, in progress, completed or cancelled; corrected by superseding."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.logbook.domain.context import Context
from services.logbook.domain.households import (
    is_member,
    readable_household,
    writable_household,
)
from services.logbook.models import Intervention, InterventionStatusChange
from services.logbook.schemas import (
    InterventionCorrection,
    InterventionCreate,
    InterventionDetail,
    InterventionPublic,
    InterventionStatus,
    StatusChangePublic,
    StatusUpdate,
)
from shared.auth import PERSONAL_DATA_ROLES
from shared.errors import Conflict, FieldError, InvalidTransition, ResourceNotFound, Unprocessable
from shared.events.logbook import (
    InterventionRecorded,
    InterventionStatusChanged,
    InterventionSuperseded,
)

S = InterventionStatus
OPEN = frozenset({S.planned, S.in_progress})
TRANSITIONS: dict[InterventionStatus, frozenset[InterventionStatus]] = {
    S.planned: frozenset({S.in_progress, S.completed, S.cancelled}),
    S.in_progress: frozenset({S.completed, S.cancelled}),
    S.completed: frozenset(),
    S.cancelled: frozenset(),
}
CLOCK_SKEW = timedelta(minutes=5)


def public(row: Intervention, superseded_by: UUID | None = None) -> InterventionPublic:
    return InterventionPublic.model_validate({**row.model_dump(), "superseded_by": superseded_by})


async def _check_entry(ctx: Context, household_id: UUID, fields: dict[str, Any]) -> None:
    """The rules an entry's fields must keep, whether new or a correction."""
    errors: list[FieldError] = []
    menu = await ctx.repo.get_menu(fields["menu_code"])
    if menu is None:
        errors.append(FieldError(field="menu_code", message="no such menu item"))
    elif menu.dimension != fields["dimension"]:
        errors.append(
            FieldError(field="menu_code", message=f"belongs to the {menu.dimension} dimension")
        )
    if fields.get("agency_id") is not None:
        agency = await ctx.repo.get_organization(fields["agency_id"])
        if agency is None or agency.kind != "agency":
            errors.append(FieldError(field="agency_id", message="no such agency"))
    if fields.get("person_id") is not None:
        if not await is_member(ctx, household_id, fields["person_id"]):
            errors.append(FieldError(field="person_id", message="not a member of the household"))
    completed_at = fields.get("completed_at")
    if completed_at is not None and completed_at > datetime.now(UTC) + CLOCK_SKEW:
        errors.append(FieldError(field="completed_at", message="in the future"))
    if errors:
        raise Unprocessable("the entry does not hold together", errors=errors)


def _recorded(row: Intervention) -> InterventionRecorded:
    return InterventionRecorded(
        intervention_id=row.id,
        household_id=row.household_id,
        area_code=row.area_code,
        person_id=row.person_id,
        dimension=row.dimension,
        menu_code=row.menu_code,
        agency_id=row.agency_id,
        amount_thb=row.amount_thb,
        status=row.status,
        planned_for=row.planned_for,
        completed_at=row.completed_at,
        recorded_at=row.recorded_at,
        supersedes=row.supersedes,
    )


async def _append(ctx: Context, row: Intervention, *, note: str | None) -> None:
    """Write a new entry with its first status, and publish it."""
    ctx.repo.add(row)
    await ctx.repo.flush()
    ctx.repo.add(
        InterventionStatusChange(
            intervention_id=row.id,
            household_id=row.household_id,
            from_status=None,
            to_status=row.status,
            note=note,
            changed_by=ctx.caller.subject,
        )
    )
    ctx.publish(_recorded(row), subject=row.id, area_code=row.area_code)
    await ctx.repo.flush()


async def record_intervention(ctx: Context, body: InterventionCreate) -> InterventionPublic:
    """Record help planned or given to a household."""
    household = await writable_household(ctx, body.household_id)
    fields = body.model_dump()
    fields["dimension"] = body.dimension.value
    await _check_entry(ctx, household.id, fields)
    if body.status is S.completed:
        fields["completed_at"] = body.completed_at or datetime.now(UTC)
    elif body.completed_at is not None:
        raise Unprocessable(
            "only a completed intervention has a completion time",
            errors=[FieldError(field="completed_at", message="not completed")],
        )
    row = Intervention(
        **{**fields, "status": body.status.value},
        area_code=household.area_code,
        recorded_by=ctx.caller.subject,
    )
    await _append(ctx, row, note=None)
    return public(row)


async def _current(ctx: Context, intervention_id: UUID, *, for_update: bool) -> Intervention:
    """The entry if it lies inside the caller's scope: where its household is now (a move of
    the household takes its entries along)."""
    ctx.caller.require(PERSONAL_DATA_ROLES, "read household records")
    row = await ctx.repo.get_intervention(intervention_id, for_update=for_update)
    if row is None or not ctx.caller.sees(row.area_code):
        raise ResourceNotFound(f"no intervention {intervention_id}")
    return row


async def _not_superseded(ctx: Context, row: Intervention) -> None:
    newer = (await ctx.repo.superseded_by([row.id])).get(row.id)
    if newer is not None:
        raise Conflict(f"intervention {row.id} was corrected by {newer}; work on that one")


async def change_status(
    ctx: Context, intervention_id: UUID, body: StatusUpdate
) -> InterventionDetail:
    """Move an intervention along planned → in_progress → completed, or cancel it."""
    household_id = (await _current(ctx, intervention_id, for_update=False)).household_id
    await writable_household(ctx, household_id)  # the household's lock, then the entry's
    row = await _current(ctx, intervention_id, for_update=True)
    await _not_superseded(ctx, row)
    current = InterventionStatus(row.status)
    if body.status not in TRANSITIONS[current]:
        raise InvalidTransition(f"an intervention cannot go from {current} to {body.status}")
    now = datetime.now(UTC)
    row.status = body.status.value
    if body.status is S.completed:
        row.completed_at = now
    ctx.repo.add(
        row,
        InterventionStatusChange(
            intervention_id=row.id,
            household_id=row.household_id,
            from_status=current.value,
            to_status=row.status,
            note=body.note,
            changed_by=ctx.caller.subject,
            changed_at=now,
        ),
    )
    ctx.publish(
        InterventionStatusChanged(
            intervention_id=row.id,
            household_id=row.household_id,
            area_code=row.area_code,
            dimension=row.dimension,
            menu_code=row.menu_code,
            amount_thb=row.amount_thb,
            from_status=current.value,
            to_status=row.status,
            changed_at=now,
            note=body.note,
        ),
        subject=row.id,
        area_code=row.area_code,
    )
    await ctx.repo.flush()
    return await get_intervention(ctx, row.id)


async def correct(
    ctx: Context, intervention_id: UUID, body: InterventionCorrection
) -> InterventionPublic:
    """Record a corrected entry that supersedes this one; the old entry stays as it was."""
    household_id = (await _current(ctx, intervention_id, for_update=False)).household_id
    household = await writable_household(ctx, household_id)  # its lock, then the entry's
    old = await _current(ctx, intervention_id, for_update=True)
    await _not_superseded(ctx, old)
    given = body.model_dump(exclude_unset=True, exclude={"reason"})
    if "dimension" in given and given["dimension"] is not None:
        given["dimension"] = given["dimension"].value
    fields = {
        k: getattr(old, k)
        for k in (
            "person_id",
            "dimension",
            "menu_code",
            "agency_id",
            "description",
            "amount_thb",
            "planned_for",
            "completed_at",
        )
    } | {
        k: v
        for k, v in given.items()
        if v is not None
        or k in {"person_id", "agency_id", "description", "amount_thb", "planned_for"}
    }
    await _check_entry(ctx, household.id, fields)
    if old.status != S.completed.value and fields.get("completed_at") is not None:
        raise Unprocessable(
            "only a completed intervention has a completion time",
            errors=[FieldError(field="completed_at", message="not completed")],
        )
    new = Intervention(
        **fields,
        household_id=household.id,
        area_code=household.area_code,
        status=old.status,
        supersedes=old.id,
        recorded_by=ctx.caller.subject,
    )
    ctx.publish(
        InterventionSuperseded(
            intervention_id=old.id,
            superseded_by=new.id,
            household_id=household.id,
            area_code=old.area_code,
            dimension=old.dimension,
            menu_code=old.menu_code,
            amount_thb=old.amount_thb,
            status=old.status,
        ),
        subject=old.id,
        area_code=old.area_code,
    )
    await _append(ctx, new, note=f"correction of {old.id}: {body.reason}")
    return public(new)


async def get_intervention(ctx: Context, intervention_id: UUID) -> InterventionDetail:
    row = await _current(ctx, intervention_id, for_update=False)
    superseded_by = (await ctx.repo.superseded_by([row.id])).get(row.id)
    history = await ctx.repo.status_history([row.id])
    return InterventionDetail(
        **public(row, superseded_by).model_dump(),
        history=[StatusChangePublic.model_validate(h, from_attributes=True) for h in history],
    )


async def list_interventions(
    ctx: Context,
    *,
    area_code: str | None,
    household_id: UUID | None,
    status: InterventionStatus | None,
    dimension: str | None,
    menu_code: str | None,
    include_superseded: bool,
    after: UUID | None,
    limit: int,
) -> Sequence[InterventionPublic]:
    """Interventions inside the caller's scope and the asked area, by id."""
    ctx.caller.require(PERSONAL_DATA_ROLES, "read household records")
    prefix = ctx.caller.listing_prefix(area_code)
    if prefix is None:
        return []
    if household_id is not None:
        await readable_household(ctx, household_id)
    rows = await ctx.repo.list_interventions(
        area_prefix=prefix,
        household_id=household_id,
        status=status.value if status else None,
        dimension=dimension,
        menu_code=menu_code,
        include_superseded=include_superseded,
        after=after,
        limit=limit,
    )
    superseded = await ctx.repo.superseded_by([r.id for r in rows]) if include_superseded else {}
    return [public(r, superseded.get(r.id)) for r in rows]
