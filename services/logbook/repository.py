"""Every query the logbook makes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, Insert, distinct_on, insert
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.models import (
    HouseholdRef,
    HouseholdStatusRef,
    Intervention,
    InterventionStatusChange,
    MenuItem,
    OrganizationRef,
    PersonRef,
    Visit,
)
from shared.db import insert_rows, one_of, run, starts_with, table_of

OPEN_STATUSES = ("planned", "in_progress")
# Held by a history import's move-in (alone) and by a move of households' entries (shared):
# the import reads the households' areas unlocked, so a move waits for its entries to commit.
HISTORY_MOVE_LOCK = 0x10_6B00C
Locked = TypeVar("Locked", HouseholdRef, Intervention)
# With DISTINCT ON (household_id): each household's most recent visit.
_LATEST_VISIT_FIRST = (
    col(Visit.household_id),
    col(Visit.visited_at).desc(),
    col(Visit.id).desc(),
)


def _in_id_order(rows: Sequence[dict[str, Any]], *, replace: bool) -> list[dict[str, Any]]:
    """Rows sorted by `id`. Of an id given twice the first stays (the later ones find it
    there), or when replacing the last alone goes in (one statement cannot change a row
    twice)."""
    if replace:
        rows = list({row["id"]: row for row in rows}.values())
    return sorted(rows, key=lambda row: row["id"])


class LogbookRepository:
    """Reads and writes the logbook's tables; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: Any) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    # Menus

    async def list_menus(self, dimension: str | None) -> Sequence[MenuItem]:
        query = select(MenuItem).order_by(col(MenuItem.dimension), col(MenuItem.code))
        if dimension is not None:
            query = query.where(MenuItem.dimension == dimension)
        return (await self.session.exec(query)).all()

    async def get_menu(self, code: str) -> MenuItem | None:
        return await self.session.get(MenuItem, code)

    # Read model

    async def get_household(
        self, household_id: UUID, *, share: bool = False
    ) -> HouseholdRef | None:
        """The household as the read model holds it; with `share`, read afresh and kept from
        changing until the transaction ends (a write for it, which a move of the household
        then waits for: the move takes the entries written with it along)."""
        if not share:
            return await self.session.get(HouseholdRef, household_id)
        return await self._locked(HouseholdRef, household_id, share=True)

    async def move_entries(self, areas: Mapping[UUID, str]) -> None:
        """The visits and interventions of these households to their new areas: a caller's
        scope takes in a household's logbook where the household now is."""
        if not areas:
            return
        await run(self.session, sa.select(sa.func.pg_advisory_xact_lock_shared(HISTORY_MOVE_LOCK)))
        moved = (
            sa.func.unnest(
                sa.cast(list(areas), ARRAY(sa.Uuid)), sa.cast(list(areas.values()), ARRAY(sa.Text))
            )
            .table_valued("id", "area_code")
            .render_derived()
        )
        for model in (Visit, Intervention):
            table = table_of(model)
            await run(
                self.session,
                table.update()
                .where(table.c.household_id == moved.c.id, table.c.area_code != moved.c.area_code)
                .values(area_code=moved.c.area_code),
            )

    async def lock_households(
        self, household_ids: set[UUID], columns: Sequence[str]
    ) -> Sequence[sa.Row[Any]]:
        """These columns of these households as the read model holds them, as plain rows,
        locked until the transaction ends (in id order, so two transactions locking
        overlapping sets never deadlock)."""
        if not household_ids:
            return []
        table = table_of(HouseholdRef)
        query = (
            sa.select(*(table.c[name] for name in columns))
            .where(one_of(table.c.id, household_ids))
            .order_by(table.c.id)
            .with_for_update()
        )
        return (await run(self.session, query)).all()

    async def insert_households(self, rows: Sequence[dict[str, Any]], *, replace: bool) -> None:
        """Add these households in id order (the order every writer takes: two of them wait
        for each other at worst, never deadlock); one already there is left as it is, or
        replaced."""

        def on_conflict(statement: Insert, columns: Sequence[str]) -> Insert:
            if not replace:
                return statement.on_conflict_do_nothing()
            updates = {k: statement.excluded[k] for k in columns if k != "id"}
            return statement.on_conflict_do_update(
                index_elements=["id"], set_={**updates, "refreshed_at": sa.func.now()}
            )

        ordered = _in_id_order(rows, replace=replace)
        await insert_rows(self.session, table_of(HouseholdRef), ordered, on_conflict)

    async def upsert_organization(self, values: dict[str, Any]) -> None:
        statement = insert(OrganizationRef).values(**values)
        updates = {k: statement.excluded[k] for k in values if k != "id"}
        await self.session.exec(
            statement.on_conflict_do_update(index_elements=["id"], set_=updates)
        )

    async def count_known(self, household_ids: Sequence[UUID]) -> int:
        """How many of these households are in the read model with a mentor team."""
        found = await self.session.scalar(
            sa.select(sa.func.count()).where(
                one_of(col(HouseholdRef.id), household_ids),
                col(HouseholdRef.mentor_team_id).is_not(None),
            )
        )
        return int(found or 0)

    async def has_any_visit(self) -> bool:
        return (await self.session.exec(select(Visit.id).limit(1))).first() is not None

    async def get_organization(self, organization_id: UUID) -> OrganizationRef | None:
        return await self.session.get(OrganizationRef, organization_id)

    async def add_persons(self, rows: Sequence[dict[str, Any]], *, replace: bool) -> None:
        """Note these persons (`id`, `household_id`) as their households' members, in id
        order (as `insert_households`); one already known is left alone, or given the row's
        household."""

        def on_conflict(statement: Insert, columns: Sequence[str]) -> Insert:
            if not replace:
                return statement.on_conflict_do_nothing()
            return statement.on_conflict_do_update(
                index_elements=["id"], set_={"household_id": statement.excluded.household_id}
            )

        ordered = _in_id_order(rows, replace=replace)
        await insert_rows(self.session, table_of(PersonRef), ordered, on_conflict)

    async def get_person(self, person_id: UUID) -> PersonRef | None:
        return await self.session.get(PersonRef, person_id)

    async def add_household_statuses(self, rows: Sequence[dict[str, Any]]) -> None:
        await insert_rows(
            self.session,
            table_of(HouseholdStatusRef),
            rows,
            lambda statement, _: statement.on_conflict_do_nothing(),
        )

    # Visits

    async def has_visits(self, household_id: UUID) -> bool:
        found = await self.session.exec(
            select(Visit.id).where(Visit.household_id == household_id).limit(1)
        )
        return found.first() is not None

    async def latest_visits(self, household_ids: Sequence[UUID]) -> dict[UUID, Visit]:
        """Each household's most recent visit."""
        if not household_ids:
            return {}
        rows = (
            await self.session.exec(
                select(Visit)
                .where(one_of(col(Visit.household_id), household_ids))
                .ext(distinct_on(col(Visit.household_id)))
                .order_by(*_LATEST_VISIT_FIRST)
            )
        ).all()
        return {v.household_id: v for v in rows}

    async def visits_of(self, household_id: UUID) -> Sequence[Visit]:
        return (
            await self.session.exec(
                select(Visit)
                .where(Visit.household_id == household_id)
                .order_by(col(Visit.visited_at), col(Visit.id))
            )
        ).all()

    # Interventions

    async def get_intervention(
        self, intervention_id: UUID, *, for_update: bool = False
    ) -> Intervention | None:
        if not for_update:
            return await self.session.get(Intervention, intervention_id)
        return await self._locked(Intervention, intervention_id, share=False)

    async def _locked(self, model: type[Locked], row_id: UUID, *, share: bool) -> Locked | None:
        """A row locked (for share, or for update) and read afresh once locked, even if this
        session has read it before."""
        query = (
            select(model)
            .where(model.id == row_id)
            .with_for_update(read=share)
            .execution_options(populate_existing=True)
        )
        return (await self.session.exec(query)).first()

    async def superseded_by(self, intervention_ids: Sequence[UUID]) -> dict[UUID, UUID]:
        if not intervention_ids:
            return {}
        rows = (
            await self.session.exec(
                select(Intervention.supersedes, Intervention.id).where(
                    one_of(col(Intervention.supersedes), intervention_ids)
                )
            )
        ).all()
        return {old: new for old, new in rows if old is not None}

    async def list_interventions(
        self,
        *,
        area_prefix: str,
        household_id: UUID | None,
        status: str | None,
        dimension: str | None,
        menu_code: str | None,
        include_superseded: bool,
        after: UUID | None,
        limit: int,
    ) -> Sequence[Intervention]:
        query = (
            select(Intervention)
            .where(starts_with(col(Intervention.area_code), area_prefix))
            .order_by(col(Intervention.id))
            .limit(limit)
        )
        if household_id is not None:
            query = query.where(Intervention.household_id == household_id)
        if status is not None:
            query = query.where(Intervention.status == status)
        if dimension is not None:
            query = query.where(Intervention.dimension == dimension)
        if menu_code is not None:
            query = query.where(Intervention.menu_code == menu_code)
        if not include_superseded:
            newer = aliased(Intervention)
            query = query.where(~sa.exists().where(col(newer.supersedes) == Intervention.id))
        if after is not None:
            query = query.where(col(Intervention.id) > after)
        return (await self.session.exec(query)).all()

    async def status_history(
        self, intervention_ids: Sequence[UUID]
    ) -> Sequence[InterventionStatusChange]:
        return (
            await self.session.exec(
                select(InterventionStatusChange)
                .where(one_of(col(InterventionStatusChange.intervention_id), intervention_ids))
                .order_by(
                    col(InterventionStatusChange.changed_at), col(InterventionStatusChange.id)
                )
            )
        ).all()

    async def interventions_of(self, household_ids: Sequence[UUID]) -> Sequence[Intervention]:
        return (
            await self.session.exec(
                select(Intervention)
                .where(one_of(col(Intervention.household_id), household_ids))
                .order_by(col(Intervention.recorded_at), col(Intervention.id))
            )
        ).all()

    # Worklist and timeline

    async def team_households(
        self, team_id: UUID, area_prefix: str, *, limit: int
    ) -> Sequence[Any]:
        """The team's households in visiting order: never visited, then most overdue.

        A household is due when its latest visit said so: a later visit's date replaces an
        earlier one's, even when it is sooner.
        """
        last_visit = (
            select(
                Visit.household_id,
                col(Visit.visited_at).label("last_visit_at"),
                col(Visit.next_visit_due).label("next_visit_due"),
            )
            .ext(distinct_on(col(Visit.household_id)))
            .order_by(*_LATEST_VISIT_FIRST)
            .subquery()
        )
        query = (
            select(HouseholdRef, last_visit.c.last_visit_at, last_visit.c.next_visit_due)
            .outerjoin(last_visit, last_visit.c.household_id == HouseholdRef.id)
            .where(
                HouseholdRef.mentor_team_id == team_id,
                starts_with(col(HouseholdRef.area_code), area_prefix),
                col(HouseholdRef.status).in_(("target", "in_progress")),
            )
            .order_by(
                last_visit.c.last_visit_at.is_not(None),
                last_visit.c.next_visit_due.asc(),
                col(HouseholdRef.id),
            )
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def household_statuses(self, household_id: UUID) -> Sequence[HouseholdStatusRef]:
        return (
            await self.session.exec(
                select(HouseholdStatusRef)
                .where(HouseholdStatusRef.household_id == household_id)
                .order_by(col(HouseholdStatusRef.changed_at))
            )
        ).all()

    async def changes_of(self, household_id: UUID) -> Sequence[InterventionStatusChange]:
        return (
            await self.session.exec(
                select(InterventionStatusChange)
                .where(InterventionStatusChange.household_id == household_id)
                .order_by(col(InterventionStatusChange.changed_at))
            )
        ).all()

    async def latest_visit_time(self, household_id: UUID) -> datetime | None:
        return await self.session.scalar(
            sa.select(sa.func.max(Visit.visited_at)).where(col(Visit.household_id) == household_id)
        )
