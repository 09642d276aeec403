"""A household's whole story, in time order."""

from __future__ import annotations

from uuid import UUID

from services.logbook.domain.context import Context
from services.logbook.domain.households import readable_household
from services.logbook.schemas import TimelineEntry


async def timeline(ctx: Context, household_id: UUID) -> list[TimelineEntry]:
    """Visits, interventions, their status changes and the registry's status changes."""
    household = await readable_household(ctx, household_id)
    entries: list[TimelineEntry] = []
    for visit in await ctx.repo.visits_of(household.id):
        entries.append(
            TimelineEntry(
                at=visit.visited_at,
                kind="visit",
                id=visit.id,
                summary=f"visit, {len(visit.problems)} problem(s) found",
                detail={
                    "team_id": str(visit.team_id) if visit.team_id else None,
                    "analysis": visit.analysis,
                    "capitals": visit.capitals,
                    "problems": visit.problems,
                    "note": visit.note,
                    "next_visit_due": visit.next_visit_due.isoformat(),
                },
            )
        )
    interventions = await ctx.repo.interventions_of([household.id])
    for row in interventions:
        entries.append(
            TimelineEntry(
                at=row.recorded_at,
                kind="intervention",
                id=row.id,
                summary=f"{row.menu_code} ({row.dimension}) recorded as {row.status}",
                detail={
                    "menu_code": row.menu_code,
                    "dimension": row.dimension,
                    "amount_thb": str(row.amount_thb) if row.amount_thb is not None else None,
                    "supersedes": str(row.supersedes) if row.supersedes else None,
                    "description": row.description,
                },
            )
        )
    for change in await ctx.repo.changes_of(household.id):
        if change.from_status is None:
            continue  # the entry itself stands for its first status
        entries.append(
            TimelineEntry(
                at=change.changed_at,
                kind="intervention_status",
                id=change.id,
                summary=f"intervention {change.from_status} → {change.to_status}",
                detail={
                    "intervention_id": str(change.intervention_id),
                    "note": change.note,
                    "changed_by": change.changed_by,
                },
            )
        )
    for status in await ctx.repo.household_statuses(household.id):
        entries.append(
            TimelineEntry(
                at=status.changed_at,
                kind="household_status",
                id=status.event_id,
                summary=f"household {status.from_status or 'new'} → {status.to_status}",
                detail={"reason": status.reason, "changed_by": status.changed_by},
            )
        )
    entries.sort(key=lambda e: (e.at, e.id))
    return entries
