"""What a mentor team should do next: its households in visiting order, with what is open."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from services.logbook.domain.context import Context
from services.logbook.domain.interventions import OPEN, public
from services.logbook.models import Intervention, Visit
from services.logbook.schemas import InterventionStatus, OpenProblem, WorklistItem
from shared.auth import PERSONAL_DATA_ROLES, Role
from shared.errors import NotPermitted


def _unaddressed(latest: Visit | None, interventions: list[Intervention]) -> list[OpenProblem]:
    """Problems found at the latest visit with no live intervention of their dimension."""
    if latest is None:
        return []
    covered = {i.dimension for i in interventions if i.status != InterventionStatus.cancelled}
    return [
        OpenProblem(
            dimension=p["dimension"],
            indicator=p.get("indicator"),
            note=p.get("note"),
            found_at=latest.visited_at,
        )
        for p in latest.problems
        if p["dimension"] not in covered
    ]


async def worklist(
    ctx: Context, team_id: UUID, *, limit: int, today: date | None = None
) -> list[WorklistItem]:
    """The team's open households: never visited first, then the most overdue."""
    caller = ctx.caller
    caller.require(PERSONAL_DATA_ROLES, "read household records")
    if caller.role is Role.mentor and caller.team_id != team_id:
        raise NotPermitted("a mentor sees its own team's worklist")
    today = today or datetime.now(UTC).date()
    rows = await ctx.repo.team_households(team_id, caller.scope_prefix(), limit=limit)
    ids = [household.id for household, _, _ in rows]
    all_interventions = await ctx.repo.interventions_of(ids)
    superseded = await ctx.repo.superseded_by([i.id for i in all_interventions])
    live: dict[UUID, list[Intervention]] = {}
    for row in all_interventions:
        if row.id not in superseded:
            live.setdefault(row.household_id, []).append(row)
    latest_visits = await ctx.repo.latest_visits(ids)
    items = []
    for household, last_visit_at, next_due in rows:
        interventions = live.get(household.id, [])
        items.append(
            WorklistItem(
                household_id=household.id,
                area_code=household.area_code,
                status=household.status,
                last_visit_at=last_visit_at,
                next_visit_due=next_due,
                days_overdue=(today - next_due).days if next_due else None,
                open_interventions=[
                    public(i) for i in interventions if InterventionStatus(i.status) in OPEN
                ],
                unaddressed_problems=_unaddressed(latest_visits.get(household.id), interventions),
            )
        )
    return items
