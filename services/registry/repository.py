"""Every query the registry makes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.models import (
    Area,
    AuditEntry,
    Household,
    IndicatorRow,
    Member,
    Organization,
    Person,
    PiiAccess,
    StatusChange,
)
from shared.db import insert_rows, one_of, starts_with, table_of, update_rows
from shared.errors import Conflict

# Unique constraints a concurrent request can win the race for, after our own checks passed.
_UNIQUE_CONFLICTS = {
    "person_citizen_id": "a citizen ID given here is registered to another person already",
    "household_house_code": "the house code belongs to another household",
    "area_pkey": "the area exists already",
}


class RegistryRepository:
    """Reads and writes the registry's tables; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        """Write what is pending; a unique constraint lost to a concurrent request is a Conflict."""
        try:
            await self.session.flush()
        except IntegrityError as exc:
            constraint = getattr(exc.orig.__cause__ if exc.orig else None, "constraint_name", None)
            if constraint in _UNIQUE_CONFLICTS:
                raise Conflict(_UNIQUE_CONFLICTS[constraint]) from exc
            raise

    def add(self, *rows: Any) -> None:
        self.session.add_all(rows)

    async def insert_rows(self, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
        """New rows of one table, as plain values, in one statement (bulk paths)."""
        await insert_rows(self.session, table_of(model), rows)

    async def update_rows(self, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
        """Changes of many rows of one table, as plain values with their `id` (bulk paths)."""
        if rows:
            await update_rows(self.session, table_of(model), rows)

    # Areas and indicators

    async def get_area(self, code: str) -> Area | None:
        return await self.session.get(Area, code)

    async def list_areas(
        self, *, level: str | None, parent: str | None, after: str | None, limit: int
    ) -> Sequence[Area]:
        query = select(Area).order_by(col(Area.code)).limit(limit)
        if level is not None:
            query = query.where(Area.level == level)
        if parent is not None:
            query = query.where(Area.parent_code == parent)
        if after is not None:
            query = query.where(col(Area.code) > after)
        return (await self.session.exec(query)).all()

    async def list_indicators(self) -> Sequence[IndicatorRow]:
        query = select(IndicatorRow).order_by(
            col(IndicatorRow.set_version), col(IndicatorRow.number)
        )
        return (await self.session.exec(query)).all()

    async def unknown_indicators(self, codes: Sequence[str]) -> list[str]:
        known = set(
            (
                await self.session.exec(
                    select(IndicatorRow.code).where(col(IndicatorRow.code).in_(codes))
                )
            ).all()
        )
        return [c for c in codes if c not in known]

    async def indicator_codes_of_dimension(self, dimension: str) -> list[str]:
        return list(
            (
                await self.session.exec(
                    select(IndicatorRow.code).where(IndicatorRow.dimension == dimension)
                )
            ).all()
        )

    # Organizations and members

    async def get_organization(self, organization_id: UUID) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def list_organizations(
        self,
        *,
        kind: str | None,
        area_prefix: str,
        ancestors: Sequence[str],
        after: UUID | None,
        limit: int,
    ) -> Sequence[Organization]:
        in_area = starts_with(col(Organization.area_code), area_prefix)
        visible = (
            sa.or_(in_area, col(Organization.area_code).in_(ancestors)) if ancestors else in_area
        )
        query = select(Organization).where(visible).order_by(col(Organization.id)).limit(limit)
        if kind is not None:
            query = query.where(Organization.kind == kind)
        if after is not None:
            query = query.where(col(Organization.id) > after)
        return (await self.session.exec(query)).all()

    async def list_members(
        self, organization_id: UUID, *, after: UUID | None, limit: int
    ) -> Sequence[Member]:
        query = (
            select(Member)
            .where(Member.organization_id == organization_id)
            .order_by(col(Member.id))
            .limit(limit)
        )
        if after is not None:
            query = query.where(col(Member.id) > after)
        return (await self.session.exec(query)).all()

    async def get_member(self, organization_id: UUID, member_id: UUID) -> Member | None:
        member = await self.session.get(Member, member_id)
        return member if member and member.organization_id == organization_id else None

    async def delete(self, row: Any) -> None:
        await self.session.delete(row)

    # Households

    async def get_household(
        self, household_id: UUID, *, for_update: bool = False
    ) -> Household | None:
        return await self.session.get(Household, household_id, with_for_update=for_update)

    async def get_households(
        self, household_ids: Sequence[UUID], *, for_update: bool = False, status: str | None = None
    ) -> list[Household]:
        """The households of these ids that exist (and have this status, if given), locked in
        id order when `for_update` (two callers locking overlapping sets then wait for each
        other instead of deadlocking)."""
        query = (
            select(Household)
            .where(one_of(col(Household.id), household_ids))
            .order_by(col(Household.id))
        )
        if status is not None:
            query = query.where(Household.status == status)
        if for_update:
            query = query.with_for_update()
        return list((await self.session.exec(query)).all())

    async def house_code_taken(self, house_code: str, *, other_than: UUID | None = None) -> bool:
        query = select(Household.id).where(Household.house_code == house_code)
        if other_than is not None:
            query = query.where(Household.id != other_than)
        return (await self.session.exec(query.limit(1))).first() is not None

    async def list_households(
        self,
        *,
        area_prefix: str,
        status: str | None,
        indicator_codes: Sequence[str] | None,
        team_id: UUID | None,
        q: str | None,
        after: UUID | None,
        limit: int,
    ) -> Sequence[Household]:
        query = (
            select(Household)
            .where(starts_with(col(Household.area_code), area_prefix))
            .order_by(col(Household.id))
            .limit(limit)
        )
        if status is not None:
            query = query.where(Household.status == status)
        if indicator_codes is not None:
            query = query.where(
                col(Household.failed_indicators).op("&&")(
                    sa.cast(list(indicator_codes), sa.ARRAY(sa.Text))
                )
            )
        if team_id is not None:
            query = query.where(Household.mentor_team_id == team_id)
        if q is not None:
            # `<%` is pg_trgm's word similarity: the words of q found anywhere in the text.
            query = query.where(sa.literal(q).op("<%")(col(Household.search_text)))
        if after is not None:
            query = query.where(col(Household.id) > after)
        return (await self.session.exec(query)).all()

    async def member_counts(self, household_ids: Sequence[UUID]) -> dict[UUID, int]:
        if not household_ids:
            return {}
        rows = (
            await self.session.exec(
                select(Person.household_id, sa.func.count())
                # A parameter an id, not one array: the planner then knows how many a page
                # asks for (listing a million households, a page took 45 ms with the array
                # against 33 ms with the list, in two national runs on the same host).
                .where(col(Person.household_id).in_(household_ids))
                .group_by(col(Person.household_id))
            )
        ).all()
        return {household_id: int(count) for household_id, count in rows}

    async def refresh_search_text(self, household_id: UUID) -> None:
        """Recompute what `q` searches: house code, address and every member's name."""
        names = (
            sa.select(
                sa.func.string_agg(
                    sa.func.concat_ws(" ", Person.title, Person.first_name, Person.last_name), " "
                )
            )
            .where(col(Person.household_id) == household_id)
            .scalar_subquery()
        )
        await self.session.exec(
            sa.update(Household)
            .filter_by(id=household_id)
            .values(
                search_text=sa.func.concat_ws(" ", Household.house_code, Household.address, names)
            )
        )

    # Persons

    async def get_person(self, person_id: UUID, *, for_update: bool = False) -> Person | None:
        return await self.session.get(Person, person_id, with_for_update=for_update)

    async def persons_of(self, household_id: UUID) -> Sequence[Person]:
        return (
            await self.session.exec(
                select(Person).where(Person.household_id == household_id).order_by(col(Person.id))
            )
        ).all()

    async def person_ids_of(self, household_id: UUID) -> list[UUID]:
        query = select(Person.id).where(Person.household_id == household_id)
        return list((await self.session.exec(query.order_by(col(Person.id)))).all())

    async def citizen_indexes_taken(
        self, indexes: Sequence[bytes], *, other_than: UUID | None = None
    ) -> set[bytes]:
        if not indexes:
            return set()
        query = select(Person.citizen_id_index).where(col(Person.citizen_id_index).in_(indexes))
        if other_than is not None:
            query = query.where(Person.id != other_than)
        return {i for i in (await self.session.exec(query)).all() if i is not None}

    async def find_person_by_index(self, index: bytes) -> Person | None:
        return (
            await self.session.exec(select(Person).where(Person.citizen_id_index == index))
        ).first()

    # History

    async def status_history(self, household_id: UUID) -> Sequence[StatusChange]:
        return (
            await self.session.exec(
                select(StatusChange)
                .where(StatusChange.household_id == household_id)
                .order_by(col(StatusChange.id))
            )
        ).all()

    async def audit_trail(
        self, household_id: UUID, *, after: UUID | None, limit: int
    ) -> Sequence[AuditEntry]:
        query = (
            select(AuditEntry)
            .where(AuditEntry.household_id == household_id)
            .order_by(col(AuditEntry.id))
            .limit(limit)
        )
        if after is not None:
            query = query.where(col(AuditEntry.id) > after)
        return (await self.session.exec(query)).all()

    async def log_pii_access(self, entries: Sequence[PiiAccess]) -> None:
        if entries:
            rows = [e.model_dump(exclude={"at"}) for e in entries]
            await insert_rows(self.session, table_of(PiiAccess), rows)
