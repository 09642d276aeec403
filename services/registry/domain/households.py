"""Households and their members: registration, changes, status, team assignment, privacy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.registry.domain.context import Context
from services.registry.models import Household, Organization, Person, PiiAccess, StatusChange
from services.registry.schemas import (
    HouseholdCreate,
    HouseholdDetail,
    HouseholdPublic,
    HouseholdStatus,
    HouseholdUpdate,
    Location,
    PersonCreate,
    PersonPublic,
    PersonUpdate,
    Sex,
    StatusTransition,
)
from shared.auth import GRADUATION_ROLES, OFFICER_ROLES, PERSONAL_DATA_ROLES, Caller, Role
from shared.errors import (
    Conflict,
    FieldError,
    InvalidTransition,
    NotPermitted,
    ResourceNotFound,
    Unprocessable,
    refuse_nulls,
)
from shared.events import uuid7
from shared.events.registry import (
    HouseholdAssigned,
    HouseholdRegistered,
    HouseholdStatusChanged,
    HouseholdUpdated,
    PersonAdded,
    PersonChanged,
)
from shared.indicators import Dimension, dimensions_of, life_stage
from shared.thai import AreaLevel, area_contains, area_level, mask_citizen_id

S = HouseholdStatus
EXITS = frozenset({S.moved, S.deceased, S.refused, S.duplicate})
TRANSITIONS: dict[HouseholdStatus, frozenset[HouseholdStatus]] = {
    S.target: frozenset({S.in_progress}) | EXITS,
    S.in_progress: frozenset({S.graduated}) | EXITS,
    S.graduated: frozenset({S.in_progress}),
    S.refused: frozenset({S.in_progress}),
    S.moved: frozenset(),
    S.deceased: frozenset(),
    S.duplicate: frozenset(),
}


# Who may do what


def _require_personal_data(caller: Caller) -> None:
    caller.require(PERSONAL_DATA_ROLES, "see personal data")


def _require_write(caller: Caller, household: Household) -> None:
    """Officers write inside their scope; a mentor only for its own team's households."""
    if caller.role in OFFICER_ROLES:
        return
    if (
        caller.role is Role.mentor
        and caller.team_id is not None
        and household.mentor_team_id == caller.team_id
    ):
        return
    raise NotPermitted("only officers, or the household's own mentor team, may change it")


async def _visible_household(
    ctx: Context, household_id: UUID, *, for_update: bool = False
) -> Household:
    """The household if it exists inside the caller's scope; otherwise the same 404 either way."""
    _require_personal_data(ctx.caller)
    household = await ctx.repo.get_household(household_id, for_update=for_update)
    if household is None or not ctx.caller.sees(household.area_code):
        raise ResourceNotFound(f"no household {household_id}")
    return household


# Presenting records


def person_public(ctx: Context, person: Person) -> PersonPublic:
    citizen_id = person.citizen_id_masked
    if person.citizen_id_cipher is not None and ctx.caller.sees_unmasked_ids:
        citizen_id = ctx.vault.decrypt(person.citizen_id_cipher)
    return PersonPublic(
        id=person.id,
        household_id=person.household_id,
        citizen_id=citizen_id,
        title=person.title,
        first_name=person.first_name,
        last_name=person.last_name,
        sex=Sex(person.sex) if person.sex else None,
        birth_date=person.birth_date,
        relation=person.relation,
        life_stage=life_stage(person.birth_date),
        disability=person.disability,
        welfare_card=person.welfare_card,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


async def present_persons(ctx: Context, persons: Sequence[Person]) -> list[PersonPublic]:
    """Persons as the caller may see them; every read is logged, unmasked ones as such (PDPA)."""
    unmasked = ctx.caller.sees_unmasked_ids
    await ctx.repo.log_pii_access(
        [
            PiiAccess(
                subject=ctx.caller.subject,
                role=ctx.caller.role.value,
                action="read_unmasked" if unmasked and p.citizen_id_cipher is not None else "read",
                person_id=p.id,
                reason=ctx.access_reason,
            )
            for p in persons
        ]
    )
    return [person_public(ctx, p) for p in persons]


def _location(household: Household) -> Location | None:
    if household.lat is None or household.lon is None:
        return None
    return Location(lat=household.lat, lon=household.lon)


def household_public(household: Household, member_count: int) -> HouseholdPublic:
    location = _location(household)
    return HouseholdPublic(
        id=household.id,
        area_code=household.area_code,
        house_code=household.house_code,
        address=household.address,
        location=location,
        survey_year=household.survey_year,
        failed_indicators=household.failed_indicators,
        dimensions=dimensions_of(household.failed_indicators),
        status=HouseholdStatus(household.status),
        mentor_team_id=household.mentor_team_id,
        member_count=member_count,
        created_at=household.created_at,
        updated_at=household.updated_at,
    )


# Validation shared by create and update


async def _check_area(ctx: Context, area_code: str) -> None:
    if area_level(area_code) not in (AreaLevel.subdistrict, AreaLevel.village):
        raise Unprocessable(
            "a household lies in a village or a sub-district",
            errors=[FieldError(field="area_code", message="give an 8- or 6-digit code")],
        )
    if not ctx.caller.sees(area_code):
        raise NotPermitted(f"area {area_code} is outside your scope")
    if await ctx.repo.get_area(area_code) is None:
        raise Unprocessable(
            f"no area {area_code}",
            errors=[FieldError(field="area_code", message="unknown area code")],
        )


async def _check_indicators(ctx: Context, codes: list[str]) -> list[str]:
    unique = list(dict.fromkeys(codes))
    unknown = await ctx.repo.unknown_indicators(unique)
    if unknown:
        raise Unprocessable(
            f"unknown indicator codes: {', '.join(unknown)}",
            errors=[
                FieldError(field="failed_indicators", message=f"unknown code {c}") for c in unknown
            ],
        )
    return sorted(unique)


async def _check_house_code(
    ctx: Context, house_code: str | None, *, other_than: UUID | None = None
) -> None:
    if house_code is not None and await ctx.repo.house_code_taken(
        house_code, other_than=other_than
    ):
        raise Conflict(f"house code {house_code} belongs to another household")


async def _check_citizen_ids(
    ctx: Context, citizen_ids: list[str], *, other_than: UUID | None = None
) -> None:
    if len(set(citizen_ids)) != len(citizen_ids):
        raise Conflict("the same citizen ID is given twice")
    indexes = [ctx.vault.blind_index(c) for c in citizen_ids]
    if await ctx.repo.citizen_indexes_taken(indexes, other_than=other_than):
        raise Conflict("a citizen ID given here is registered to another person already")


def _serves(team: Organization, area_code: str) -> bool:
    """Whether a mentor team works in the sub-district of this area."""
    return area_contains(team.area_code[:6], area_code)


async def _check_team_still_serves(ctx: Context, household: Household, area_code: str) -> None:
    if household.mentor_team_id is None:
        return
    team = await ctx.repo.get_organization(household.mentor_team_id)
    if team is not None and not _serves(team, area_code):
        raise Conflict(
            "the household's mentor team works in another sub-district: "
            "assign it to another team (or none) before moving it"
        )


def _new_person(ctx: Context, household: Household, body: PersonCreate) -> Person:
    person = Person(household_id=household.id, **body.model_dump(exclude={"citizen_id"}))
    if body.citizen_id is not None:
        _set_citizen_id(ctx, person, body.citizen_id)
    return person


def _set_citizen_id(ctx: Context, person: Person, digits: str) -> None:
    person.citizen_id_cipher = ctx.vault.encrypt(digits)
    person.citizen_id_index = ctx.vault.blind_index(digits)
    person.citizen_id_masked = mask_citizen_id(digits)


def _person_added(person: Person, household: Household) -> PersonAdded:
    stage = life_stage(person.birth_date)
    return PersonAdded(
        person_id=person.id,
        household_id=household.id,
        area_code=household.area_code,
        sex=person.sex,
        birth_date=person.birth_date,
        life_stage=stage.value if stage else None,
        disability=person.disability,
        welfare_card=person.welfare_card,
    )


def _person_audit(person: Person) -> dict[str, Any]:
    fields = PersonCreate.model_fields.keys() - {"citizen_id"}
    changes: dict[str, Any] = {f: [None, _plain(getattr(person, f))] for f in sorted(fields)}
    changes["citizen_id"] = [None, person.citizen_id_masked]
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


# Households


async def register_household(ctx: Context, body: HouseholdCreate) -> HouseholdDetail:
    """Register a target household (and its members) in status `target`."""
    ctx.caller.require(OFFICER_ROLES, "register households")
    await _check_area(ctx, body.area_code)
    indicators = await _check_indicators(ctx, body.failed_indicators)
    await _check_house_code(ctx, body.house_code)
    await _check_citizen_ids(ctx, [m.citizen_id for m in body.members if m.citizen_id])

    household = Household(
        area_code=body.area_code,
        house_code=body.house_code,
        address=body.address,
        lat=body.location.lat if body.location else None,
        lon=body.location.lon if body.location else None,
        survey_year=body.survey_year,
        failed_indicators=indicators,
        status=HouseholdStatus.target.value,
        created_by=ctx.caller.subject,
    )
    persons = [_new_person(ctx, household, m) for m in body.members]
    ctx.repo.add(household)
    await ctx.repo.flush()
    ctx.repo.add(*persons)
    ctx.repo.add(
        StatusChange(
            household_id=household.id,
            from_status=None,
            to_status=household.status,
            reason="registered",
            changed_by=ctx.caller.subject,
        )
    )
    await ctx.repo.flush()
    await ctx.repo.refresh_search_text(household.id)

    ctx.audit(
        household,
        entity="household",
        entity_id=household.id,
        action="created",
        changes={k: [None, _plain(v)] for k, v in body.model_dump(exclude={"members"}).items()}
        | {"failed_indicators": [None, indicators]},
    )
    ctx.publish(
        HouseholdRegistered(
            household_id=household.id,
            area_code=household.area_code,
            house_code=household.house_code,
            status=household.status,
            survey_year=household.survey_year,
            failed_indicators=indicators,
            dimensions=[d.value for d in dimensions_of(indicators)],
            mentor_team_id=None,
            member_count=len(persons),
        ),
        subject=household.id,
        area_code=household.area_code,
    )
    for person in persons:
        ctx.audit(
            household,
            entity="person",
            entity_id=person.id,
            action="member_added",
            changes=_person_audit(person),
        )
        ctx.publish(
            _person_added(person, household), subject=person.id, area_code=household.area_code
        )
    await ctx.repo.flush()
    return HouseholdDetail(
        **household_public(household, len(persons)).model_dump(),
        members=await present_persons(ctx, persons),
    )


async def get_household(ctx: Context, household_id: UUID) -> tuple[HouseholdDetail, int]:
    """A household with its members, and its version for the ETag."""
    household = await _visible_household(ctx, household_id)
    persons = await ctx.repo.persons_of(household.id)
    detail = HouseholdDetail(
        **household_public(household, len(persons)).model_dump(),
        members=await present_persons(ctx, persons),
    )
    return detail, household.version


async def list_households(
    ctx: Context,
    *,
    area_code: str | None,
    status: HouseholdStatus | None,
    dimension: Dimension | None,
    team_id: UUID | None,
    q: str | None,
    after: UUID | None,
    limit: int,
) -> list[HouseholdPublic]:
    """Households inside both the caller's scope and the asked area, by id."""
    _require_personal_data(ctx.caller)
    prefix = ctx.caller.listing_prefix(area_code)
    if prefix is not None and team_id is not None:
        prefix = await _team_prefix(ctx, prefix, team_id)
    if prefix is None:
        return []  # beside the scope, or beside the team's sub-district: nothing to see
    codes = await ctx.repo.indicator_codes_of_dimension(dimension.value) if dimension else None
    rows = await ctx.repo.list_households(
        area_prefix=prefix,
        status=status.value if status else None,
        indicator_codes=codes,
        team_id=team_id,
        q=q,
        after=after,
        limit=limit,
    )
    counts = await ctx.repo.member_counts([h.id for h in rows])
    return [household_public(h, counts.get(h.id, 0)) for h in rows]


async def _team_prefix(ctx: Context, prefix: str, team_id: UUID) -> str | None:
    """The area a list of a team's households need look in: a team's households are all in
    its sub-district, so the list is narrowed to it (households have no index by team; the
    area index finds a sub-district's few hundred). None when no household can match."""
    team = await ctx.repo.get_organization(team_id)
    if team is None or team.kind != "mentor_team":
        return None
    serves = team.area_code[:6]
    if serves.startswith(prefix):
        return serves
    return prefix if prefix.startswith(serves) else None


async def update_household(
    ctx: Context, household_id: UUID, body: HouseholdUpdate, *, check_version: Any
) -> tuple[HouseholdDetail, int]:
    """Change a household's details; every field changed goes to the audit trail."""
    household = await _visible_household(ctx, household_id, for_update=True)
    _require_write(ctx.caller, household)
    check_version(household.version)
    given = body.model_dump(exclude_unset=True)
    if "area_code" in given and given["area_code"] is not None:
        await _check_area(ctx, given["area_code"])
        await _check_team_still_serves(ctx, household, given["area_code"])
    if "failed_indicators" in given and given["failed_indicators"] is not None:
        given["failed_indicators"] = await _check_indicators(ctx, given["failed_indicators"])
    if given.get("house_code") is not None:
        await _check_house_code(ctx, given["house_code"], other_than=household.id)
    refuse_nulls(given, ("area_code", "failed_indicators"))

    # Changes are recorded under the API's names (`location`, not the lat/lon columns).
    changes: dict[str, Any] = {}
    if "location" in given:
        location, old_location = given.pop("location"), _location(household)
        if location != (old_location.model_dump() if old_location else None):
            changes["location"] = [old_location.model_dump() if old_location else None, location]
            household.lat = location["lat"] if location else None
            household.lon = location["lon"] if location else None
    for key, value in given.items():
        if getattr(household, key) != value:
            changes[key] = [_plain(getattr(household, key)), _plain(value)]
            setattr(household, key, value)
    previous_area = changes.get("area_code", [household.area_code])[0]
    if changes:
        household.version += 1
        household.updated_at = datetime.now(UTC)
        ctx.repo.add(household)
        await ctx.repo.flush()
        await ctx.repo.refresh_search_text(household.id)
        ctx.audit(
            household, entity="household", entity_id=household.id, action="updated", changes=changes
        )
        ctx.publish(
            HouseholdUpdated(
                household_id=household.id,
                area_code=household.area_code,
                previous_area_code=previous_area,
                changed=sorted(changes),
                failed_indicators=household.failed_indicators,
                dimensions=[d.value for d in dimensions_of(household.failed_indicators)],
            ),
            subject=household.id,
            area_code=household.area_code,
        )
    return await get_household(ctx, household.id)


async def change_status(ctx: Context, household_id: UUID, body: StatusTransition) -> StatusChange:
    """Move a household along its life cycle; only the allowed transitions, by the right roles."""
    household = await _visible_household(ctx, household_id, for_update=True)
    change = StatusChange(**_transition(ctx, household, body))
    ctx.repo.add(change)
    await ctx.repo.flush()
    return change


def _transition(ctx: Context, household: Household, body: StatusTransition) -> dict[str, Any]:
    """Check and make one status change of a locked household: the household, the audit trail
    and the event; returns its status-history row, for the caller to write (alone, or with
    many in one statement)."""
    _require_write(ctx.caller, household)
    current = HouseholdStatus(household.status)
    if body.status not in TRANSITIONS[current]:
        raise InvalidTransition(f"a household cannot go from {current} to {body.status}")
    if body.status is S.graduated:
        ctx.caller.require(GRADUATION_ROLES, "confirm graduation")
    if body.status in EXITS:
        ctx.caller.require(OFFICER_ROLES, f"mark a household {body.status.value}")
    if (body.status is S.graduated or body.status in EXITS) and not body.reason:
        raise Unprocessable(
            "say why", errors=[FieldError(field="reason", message="required for this status")]
        )
    change = {
        "id": uuid7(),
        "household_id": household.id,
        "from_status": current.value,
        "to_status": body.status.value,
        "reason": body.reason,
        "changed_by": ctx.caller.subject,
    }
    ctx.change(household, status=body.status.value)
    ctx.audit(
        household,
        entity="household",
        entity_id=household.id,
        action="status_changed",
        changes={"status": [current.value, body.status.value], "reason": body.reason},
    )
    ctx.publish(
        HouseholdStatusChanged(
            household_id=household.id,
            area_code=household.area_code,
            from_status=current.value,
            to_status=body.status.value,
            reason=body.reason,
            changed_by=ctx.caller.subject,
        ),
        subject=household.id,
        area_code=household.area_code,
    )
    return change


async def status_history(ctx: Context, household_id: UUID) -> Sequence[StatusChange]:
    household = await _visible_household(ctx, household_id)
    return await ctx.repo.status_history(household.id)


async def audit_trail(
    ctx: Context, household_id: UUID, *, after: UUID | None, limit: int
) -> Sequence[Any]:
    """A page of `limit` audit entries, and the first of the next page if there is one. The
    members' data on the page is a read of personal data, logged once per person it shows
    (PDPA), as a read of the members is."""
    household = await _visible_household(ctx, household_id)
    entries = await ctx.repo.audit_trail(household.id, after=after, limit=limit + 1)
    shown = dict.fromkeys(e.entity_id for e in entries[:limit] if e.entity == "person")
    await ctx.repo.log_pii_access(
        [
            PiiAccess(
                subject=ctx.caller.subject,
                role=ctx.caller.role.value,
                action="read",
                person_id=person_id,
                reason=ctx.access_reason,
            )
            for person_id in shown
        ]
    )
    return entries


async def assign_mentor_team(
    ctx: Context, household_id: UUID, team_id: UUID | None, *, check_version: Any
) -> tuple[HouseholdPublic, int]:
    """Give a household to a mentor team of its sub-district (or take it away)."""
    ctx.caller.require(OFFICER_ROLES, "assign mentor teams")
    household = await _visible_household(ctx, household_id, for_update=True)
    check_version(household.version)
    team = await _mentor_team(ctx, team_id)
    _assign(ctx, household, team)
    await ctx.repo.flush()
    counts = await ctx.repo.member_counts([household.id])
    return household_public(household, counts.get(household.id, 0)), household.version


async def assign_mentor_team_to_many(
    ctx: Context, household_ids: Sequence[UUID], team_id: UUID | None
) -> int:
    """Give many households to one mentor team at once, all or none; how many changed team.

    Each household is checked, audited and announced as when assigned alone. One that does not
    exist or is outside the caller's area is the same 404, and nothing is assigned.
    """
    ctx.caller.require(OFFICER_ROLES, "assign mentor teams")
    _require_personal_data(ctx.caller)
    found = {
        household.id: household
        for household in await ctx.repo.get_households(household_ids, for_update=True)
        if ctx.caller.sees(household.area_code)
    }
    for household_id in household_ids:
        if household_id not in found:
            raise ResourceNotFound(f"no household {household_id}")
    team = await _mentor_team(ctx, team_id)
    async with ctx.bulk():
        return sum(_assign(ctx, found[household_id], team) for household_id in household_ids)


async def _mentor_team(ctx: Context, team_id: UUID | None) -> Organization | None:
    """The mentor team to assign to (None to unassign), if the caller may see it."""
    if team_id is None:
        return None
    team = await ctx.repo.get_organization(team_id)
    if team is None or team.kind != "mentor_team" or not ctx.caller.sees(team.area_code):
        raise Unprocessable(
            f"no mentor team {team_id}",
            errors=[FieldError(field="team_id", message="unknown team")],
        )
    return team


def _assign(ctx: Context, household: Household, team: Organization | None) -> bool:
    """Put a household under a team (None: under none); audit and announce it if it moved."""
    if team is not None and not _serves(team, household.area_code):
        raise Unprocessable(
            f"the team works in another sub-district than household {household.id}",
            errors=[FieldError(field="team_id", message="team outside the household's area")],
        )
    previous, team_id = household.mentor_team_id, team.id if team is not None else None
    if previous == team_id:
        return False
    ctx.change(household, mentor_team_id=team_id)
    ctx.audit(
        household,
        entity="household",
        entity_id=household.id,
        action="assigned",
        changes={"mentor_team_id": [_plain(previous), _plain(team_id)]},
    )
    ctx.publish(
        HouseholdAssigned(
            household_id=household.id,
            area_code=household.area_code,
            mentor_team_id=team_id,
            previous_team_id=previous,
        ),
        subject=household.id,
        area_code=household.area_code,
    )
    return True


# Members and persons


async def add_member(ctx: Context, household_id: UUID, body: PersonCreate) -> PersonPublic:
    household = await _visible_household(ctx, household_id, for_update=True)
    _require_write(ctx.caller, household)
    await _check_citizen_ids(ctx, [body.citizen_id] if body.citizen_id else [])
    person = _new_person(ctx, household, body)
    ctx.repo.add(person)
    await ctx.repo.flush()
    await ctx.repo.refresh_search_text(household.id)
    ctx.audit(
        household,
        entity="person",
        entity_id=person.id,
        action="member_added",
        changes=_person_audit(person),
    )
    ctx.publish(_person_added(person, household), subject=person.id, area_code=household.area_code)
    await ctx.repo.flush()
    return (await present_persons(ctx, [person]))[0]


async def list_members(ctx: Context, household_id: UUID) -> list[PersonPublic]:
    household = await _visible_household(ctx, household_id)
    return await present_persons(ctx, await ctx.repo.persons_of(household.id))


async def _visible_person(
    ctx: Context, person_id: UUID, *, for_update: bool = False
) -> tuple[Person, Household]:
    _require_personal_data(ctx.caller)
    person = await ctx.repo.get_person(person_id, for_update=for_update)
    household = await ctx.repo.get_household(person.household_id) if person else None
    if person is None or household is None or not ctx.caller.sees(household.area_code):
        raise ResourceNotFound(f"no person {person_id}")
    return person, household


async def get_person(ctx: Context, person_id: UUID) -> tuple[PersonPublic, int]:
    person, _ = await _visible_person(ctx, person_id)
    return (await present_persons(ctx, [person]))[0], person.version


async def update_person(
    ctx: Context, person_id: UUID, body: PersonUpdate, *, check_version: Any
) -> tuple[PersonPublic, int]:
    person, household = await _visible_person(ctx, person_id, for_update=True)
    _require_write(ctx.caller, household)
    check_version(person.version)
    given = body.model_dump(exclude_unset=True)
    refuse_nulls(given, ("first_name", "last_name", "disability", "welfare_card"))
    changes: dict[str, Any] = {}
    if "citizen_id" in given:
        citizen_id = given.pop("citizen_id")
        old_masked, old_index = person.citizen_id_masked, person.citizen_id_index
        if citizen_id is None:  # null removes a citizen ID entered by mistake
            person.citizen_id_cipher = person.citizen_id_index = person.citizen_id_masked = None
        elif ctx.vault.blind_index(citizen_id) != old_index:
            await _check_citizen_ids(ctx, [citizen_id], other_than=person.id)
            _set_citizen_id(ctx, person, citizen_id)
        if person.citizen_id_index != old_index:
            changes["citizen_id"] = [old_masked, person.citizen_id_masked]
    for key, value in given.items():
        if getattr(person, key) != value:
            changes[key] = [_plain(getattr(person, key)), _plain(value)]
            setattr(person, key, value)
    if changes:
        person.version += 1
        person.updated_at = datetime.now(UTC)
        ctx.repo.add(person)
        await ctx.repo.flush()
        await ctx.repo.refresh_search_text(household.id)
        ctx.audit(
            household,
            entity="person",
            entity_id=person.id,
            action="member_updated",
            changes=changes,
        )
        stage = life_stage(person.birth_date)
        ctx.publish(
            PersonChanged(
                person_id=person.id,
                household_id=household.id,
                area_code=household.area_code,
                changed=sorted(changes),
                life_stage=stage.value if stage else None,
                disability=person.disability,
                welfare_card=person.welfare_card,
            ),
            subject=person.id,
            area_code=household.area_code,
        )
        await ctx.repo.flush()
    return (await present_persons(ctx, [person]))[0], person.version


async def lookup_person(ctx: Context, citizen_id: str, reason: str) -> PersonPublic | None:
    """Find a person by citizen ID, inside the caller's scope; the lookup itself is logged."""
    _require_personal_data(ctx.caller)
    person = await ctx.repo.find_person_by_index(ctx.vault.blind_index(citizen_id))
    household = await ctx.repo.get_household(person.household_id) if person else None
    visible = person is not None and household is not None and ctx.caller.sees(household.area_code)
    await ctx.repo.log_pii_access(
        [
            PiiAccess(
                subject=ctx.caller.subject,
                role=ctx.caller.role.value,
                action="lookup",
                person_id=person.id if visible and person else None,
                reason=reason,
            )
        ]
    )
    if not visible or person is None:
        return None  # not raised: the lookup must stay in the access log
    return person_public(ctx, person)


# For the other services


async def summary(ctx: Context, household_id: UUID) -> tuple[Household, list[UUID]]:
    """A household and its members' ids, for another service acting on it."""
    ctx.caller.require(frozenset({Role.system}), "read household summaries")
    household = await ctx.repo.get_household(household_id)
    if household is None or not ctx.caller.sees(household.area_code):
        raise ResourceNotFound(f"no household {household_id}")
    return household, await ctx.repo.person_ids_of(household_id)


async def start_progress(ctx: Context, reasons: Mapping[UUID, str]) -> int:
    """Move each of these households that is still `target` to `in_progress`, for the reason
    given (its first visit or intervention), by the same rule as an officer's request; leave
    any other as it is. One statement finds and locks them all; how many moved."""
    moving = await ctx.repo.get_households(
        list(reasons), for_update=True, status=HouseholdStatus.target
    )
    async with ctx.bulk():
        changes = [
            _transition(
                ctx, household, StatusTransition(status=S.in_progress, reason=reasons[household.id])
            )
            for household in moving
        ]
        await ctx.repo.insert_rows(StatusChange, changes)
    return len(moving)
