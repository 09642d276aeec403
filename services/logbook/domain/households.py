"""The households the logbook may write for: its read model, and the registry as a fallback."""

from __future__ import annotations

from uuid import UUID

from services.logbook.domain.context import Context
from services.logbook.models import HouseholdRef
from shared.auth import OFFICER_ROLES, PERSONAL_DATA_ROLES, Role
from shared.errors import NotPermitted, ResourceNotFound

WRITABLE_STATUSES = frozenset({"target", "in_progress", "graduated", "refused"})


async def known_household(
    ctx: Context, household_id: UUID, *, share: bool = False
) -> HouseholdRef | None:
    """The household from the read model; asked of the registry (once) when not there yet.
    With `share`, kept from changing until the transaction ends (see `writable_household`)."""
    household = await ctx.repo.get_household(household_id, share=share)
    if household is not None:
        return household
    if not await _learn(ctx, household_id):
        return None
    return await ctx.repo.get_household(household_id, share=share)


async def is_member(ctx: Context, household_id: UUID, person_id: UUID) -> bool:
    """Whether the person belongs to the household. A person never changes household, so
    the read model's answer stands once it knows the person; a person it has not heard of
    yet (added a moment ago) is asked of the registry with the household."""
    person = await ctx.repo.get_person(person_id)
    if person is None and await _learn(ctx, household_id):
        person = await ctx.repo.get_person(person_id)
    return person is not None and person.household_id == household_id


async def _learn(ctx: Context, household_id: UUID) -> bool:
    """Put the registry's word on the household and its members into the read model; whether
    the household exists. A household the read model already has is left as it is: its
    events keep it current, and this answer may be older than one applied meanwhile."""
    found = await ctx.registry.household(household_id)
    if found is None:
        return False
    values = {
        "id": household_id,
        "area_code": found["area_code"],
        "mentor_team_id": found.get("mentor_team_id"),
        "status": found["status"],
    }
    await ctx.repo.insert_households([values], replace=False)
    members = [{"id": UUID(p), "household_id": household_id} for p in found.get("person_ids", [])]
    await ctx.repo.add_persons(members, replace=False)
    return True


async def readable_household(
    ctx: Context, household_id: UUID, *, share: bool = False
) -> HouseholdRef:
    """A household inside the caller's scope; the same 404 for one outside it or missing."""
    ctx.caller.require(PERSONAL_DATA_ROLES, "read household records")
    household = await known_household(ctx, household_id, share=share)
    if household is None or not ctx.caller.sees(household.area_code):
        raise ResourceNotFound(f"no household {household_id}")
    return household


async def writable_household(ctx: Context, household_id: UUID) -> HouseholdRef:
    """A household the caller may write for: in scope, and for a mentor, its own team's.

    It stays as read until the write commits: a move to another area, which takes the
    household's entries along, waits for the write and then takes its entry too. Lock it
    before any entry of it (a move takes the household, then its entries)."""
    household = await readable_household(ctx, household_id, share=True)
    caller = ctx.caller
    if caller.role is Role.mentor:
        if caller.team_id is None or not await _assigned_to(ctx, household, caller.team_id):
            raise NotPermitted("a mentor writes only for its own team's households")
    elif caller.role not in OFFICER_ROLES:
        raise NotPermitted(f"a {caller.role.value} may not write to the logbook")
    if household.status not in WRITABLE_STATUSES:
        raise NotPermitted(f"the household is {household.status}; its logbook is closed")
    return household


async def _assigned_to(ctx: Context, household: HouseholdRef, team_id: UUID) -> bool:
    """Whether the household is the team's. The read model may lag an assignment made a
    moment ago, so before refusing, the registry (the owner of assignments) is asked."""
    if household.mentor_team_id == team_id:
        return True
    current = await ctx.registry.household(household.id)
    return current is not None and str(current.get("mentor_team_id")) == str(team_id)
