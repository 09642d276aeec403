"""Visits by mentor teams: the 4 ท analysis, the five capitals, problems and the next visit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.logbook.domain.context import Context
from services.logbook.domain.households import readable_household, writable_household
from services.logbook.models import Visit
from services.logbook.schemas import VisitCreate
from shared.auth import Role
from shared.errors import FieldError, NotPermitted, Unprocessable
from shared.events.logbook import ProblemFound, VisitRecorded
from shared.indicators import INDICATORS_BY_CODE

CLOCK_SKEW = timedelta(minutes=5)


def _check_problems(body: VisitCreate) -> None:
    errors = []
    for n, problem in enumerate(body.problems):
        if problem.indicator is None:
            continue
        indicator = INDICATORS_BY_CODE.get(problem.indicator)
        if indicator is None:
            errors.append(FieldError(field=f"problems.{n}.indicator", message="unknown code"))
        elif indicator.dimension != problem.dimension:
            errors.append(
                FieldError(
                    field=f"problems.{n}.indicator",
                    message=f"belongs to {indicator.dimension.value}",
                )
            )
    if errors:
        raise Unprocessable("a problem names an indicator that does not fit", errors=errors)


async def _check_team(ctx: Context, team_id: UUID | None, area_code: str) -> UUID | None:
    if ctx.caller.role is Role.mentor:
        if team_id is not None and team_id != ctx.caller.team_id:
            raise NotPermitted("a mentor records visits for its own team only")
        return ctx.caller.team_id
    if team_id is not None:
        team = await ctx.repo.get_organization(team_id)
        if (
            team is None
            or team.kind != "mentor_team"
            or not area_code.startswith(team.area_code[:6])
        ):
            raise Unprocessable(
                f"no mentor team {team_id} for this household",
                errors=[FieldError(field="team_id", message="unknown team")],
            )
    return team_id


async def record_visit(ctx: Context, household_id: UUID, body: VisitCreate) -> Visit:
    """Record a visit; the first one moves the household to in_progress (in the registry)."""
    household = await writable_household(ctx, household_id)
    now = datetime.now(UTC)
    visited_at = body.visited_at
    if visited_at > now + CLOCK_SKEW:
        raise Unprocessable(
            "a visit cannot be in the future",
            errors=[FieldError(field="visited_at", message="in the future")],
        )
    _check_problems(body)
    team_id = await _check_team(ctx, body.team_id, household.area_code)
    if body.next_visit_due is not None and body.next_visit_due < visited_at.date():
        raise Unprocessable(
            "the next visit is due after this one",
            errors=[FieldError(field="next_visit_due", message="before visit")],
        )
    days = (
        ctx.settings.follow_up_days_with_problems
        if body.problems
        else ctx.settings.follow_up_days_without_problems
    )
    due = body.next_visit_due or (visited_at + timedelta(days=days)).date()
    first_visit = not await ctx.repo.has_visits(household.id)

    visit = Visit(
        household_id=household.id,
        area_code=household.area_code,
        team_id=team_id,
        visited_at=visited_at,
        analysis=body.analysis.model_dump(),
        capitals=body.capitals.model_dump() if body.capitals else {},
        problems=[p.model_dump(mode="json") for p in body.problems],
        note=body.note,
        next_visit_due=due,
        recorded_by=ctx.caller.subject,
    )
    ctx.repo.add(visit)
    await ctx.repo.flush()
    ctx.publish(
        VisitRecorded(
            visit_id=visit.id,
            household_id=household.id,
            area_code=household.area_code,
            team_id=team_id,
            visited_at=visited_at,
            first_visit=first_visit,
            problems=[
                ProblemFound(dimension=p.dimension.value, indicator=p.indicator)
                for p in body.problems
            ],
            capitals=visit.capitals,
            next_visit_due=due,
        ),
        subject=visit.id,
        area_code=household.area_code,
    )
    return visit


async def list_visits(ctx: Context, household_id: UUID) -> Sequence[Visit]:
    household = await readable_household(ctx, household_id)
    return await ctx.repo.visits_of(household.id)
