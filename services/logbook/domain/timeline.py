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
                    "recorded_by": visit.recorded_by,
                },
            )
        )
    changes = await ctx.repo.changes_of(household.id)
    # An entry is shown as it was recorded; its later statuses are entries of their own.
    first_status = {c.intervention_id: c.to_status for c in changes if c.from_status is None}
    for row in await ctx.repo.interventions_of([household.id]):
        recorded_as = first_status.get(row.id, row.status)
        entries.append(
            TimelineEntry(
                at=row.recorded_at,
                kind="intervention",
                id=row.id,
                summary=f"{row.menu_code} ({row.dimension}) recorded as {recorded_as}",
                detail={
                    "menu_code": row.menu_code,
                    "dimension": row.dimension,
                    "status": recorded_as,
                    "person_id": str(row.person_id) if row.person_id else None,
                    "agency_id": str(row.agency_id) if row.agency_id else None,
                    "amount_thb": str(row.amount_thb) if row.amount_thb is not None else None,
                    "planned_for": row.planned_for.isoformat() if row.planned_for else None,
                    "supersedes": str(row.supersedes) if row.supersedes else None,
                    "description": row.description,
                    "recorded_by": row.recorded_by,
                },
            )
        )
    for change in changes:
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
