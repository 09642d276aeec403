"""Every query the analytics service makes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.domain.contributions import ALL, HouseholdFact, InterventionFact
from shared.db import run
from shared.thai import COUNTRY

metadata = sa.MetaData()
areas = sa.Table(
    "area",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("level", sa.Text),
    sa.Column("name_th", sa.Text),
    sa.Column("name_en", sa.Text),
    sa.Column("parent_code", sa.Text),
)
household_facts = sa.Table(
    "household_fact",
    metadata,
    sa.Column("household_id", sa.Uuid, primary_key=True),
    sa.Column("area_code", sa.Text),
    sa.Column("registered", sa.Boolean),
    sa.Column("status", sa.Text),
    sa.Column("status_at", sa.DateTime(timezone=True)),
    sa.Column("area_at", sa.DateTime(timezone=True)),
    sa.Column("dimensions", ARRAY(sa.Text)),
    sa.Column("live", JSONB),
)
intervention_facts = sa.Table(
    "intervention_fact",
    metadata,
    sa.Column("intervention_id", sa.Uuid, primary_key=True),
    sa.Column("household_id", sa.Uuid),
    sa.Column("area_code", sa.Text),
    sa.Column("dimension", sa.Text),
    sa.Column("menu_code", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("amount_thb", sa.Numeric(16, 2)),
    sa.Column("superseded", sa.Boolean),
)
MEASURES = (
    "target_households",
    "reached_households",
    "graduated_households",
    "planned",
    "in_progress",
    "completed",
    "cancelled",
)
area_progress = sa.Table(
    "area_progress",
    metadata,
    sa.Column("area_code", sa.Text, primary_key=True),
    sa.Column("dimension", sa.Text, primary_key=True),
    *(sa.Column(m, sa.BigInteger) for m in MEASURES),
    sa.Column("amount_thb", sa.Numeric(18, 2)),
    sa.Column("as_of", sa.DateTime(timezone=True)),
)
# Net changes per month: the series is their running sum.
area_month = sa.Table(
    "area_month",
    metadata,
    sa.Column("area_code", sa.Text, primary_key=True),
    sa.Column("dimension", sa.Text, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    *(sa.Column(m, sa.BigInteger) for m in MEASURES),
    sa.Column("amount_thb", sa.Numeric(18, 2)),
)
menu_progress = sa.Table(
    "menu_progress",
    metadata,
    sa.Column("area_code", sa.Text, primary_key=True),
    sa.Column("menu_code", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("interventions", sa.BigInteger),
    sa.Column("amount_thb", sa.Numeric(18, 2)),
)


# Advisory lock classes of the facts (the first of the two keys).
HOUSEHOLD_LOCK, INTERVENTION_LOCK = 1, 2
# A session's `info[LOCK_SPACE]` moves its fact locks into a space of their own (a rebuild's).
LOCK_SPACE, REBUILD_LOCK_SPACE = "analytics.lock_space", 10
# Held shared by every live consumer transaction, exclusively by a rebuild's swap.
PROJECTION_LOCK = 0x70696E70  # "pinp"


def _lock_key(entity: UUID) -> int:
    return int.from_bytes(entity.bytes[-4:], "big", signed=True)


def _unnest(kind: Any, values: list[Any], name: str | None = None) -> Any:
    """One column of many rows, sent as one array parameter (a statement that compiles once,
    whatever the number of rows)."""
    column = sa.func.unnest(sa.cast(values, ARRAY(kind)))
    return column.label(name) if name else column


def _json(rows: list[dict[str, Any]]) -> str:
    """Many rows as one JSON parameter: `json.dumps` writes it in one C call, where arrays of
    ten columns would have the driver encode each value on its own (most of them zeros)."""
    return json.dumps(rows, default=str, separators=(",", ":"))


SUMS = (*MEASURES, "amount_thb")
# Rows of deltas, each kept by the area an event or a fact names, and every area they add to:
# that area and each one above it up to the country, as `areas_of` in the domain (its code's
# prefixes of 2, 4, 6 and 8 digits, and TH).
DELTAS = f"""
    json_to_recordset(CAST(CAST(:rows AS TEXT) AS JSON)) AS delta(
        area_code TEXT, dimension TEXT, month DATE,
        {", ".join(f"{m} BIGINT" for m in MEASURES)}, amount_thb NUMERIC, as_of TIMESTAMPTZ)
    CROSS JOIN LATERAL (
        SELECT '{COUNTRY}' UNION ALL
        SELECT left(delta.area_code, n) FROM unnest('{{2,4,6,8}}'::INT[]) AS n
        WHERE n <= length(delta.area_code)
    ) AS above(area_code)"""
ADDED = ", ".join(f"{m} = {{table}}.{m} + excluded.{m}" for m in SUMS)
# One statement: the rows rolled up to every area once, added to each month's net changes and
# to the totals. Each table's rows are added in key order (the months first, then the totals,
# in every transaction), so two transactions never wait on each other in a circle.
ADD_TO_TOTALS = sa.text(f"""
    WITH rolled AS MATERIALIZED (
        SELECT above.area_code, delta.dimension, delta.month,
            {", ".join(f"coalesce(sum(delta.{m}), 0) AS {m}" for m in SUMS)},
            max(delta.as_of) AS as_of
        FROM {DELTAS}
        GROUP BY 1, 2, 3
    ), progress AS (
        INSERT INTO area_progress (area_code, dimension, {", ".join(SUMS)}, as_of)
        SELECT area_code, dimension, {", ".join(f"sum({m})" for m in SUMS)}, max(as_of)
        FROM rolled
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (area_code, dimension) DO UPDATE SET {ADDED.format(table="area_progress")},
            as_of = greatest(area_progress.as_of, excluded.as_of)
    )
    INSERT INTO area_month (area_code, dimension, month, {", ".join(SUMS)})
    SELECT area_code, dimension, month, {", ".join(SUMS)}
    FROM rolled
    WHERE month IS NOT NULL AND ({" OR ".join(f"{m} <> 0" for m in SUMS)})
    ORDER BY 1, 2, 3
    ON CONFLICT (area_code, dimension, month) DO UPDATE SET {ADDED.format(table="area_month")}""")
ADD_TO_MENUS = sa.text(f"""
    INSERT INTO menu_progress (area_code, menu_code, status, interventions, amount_thb)
    SELECT above.area_code, delta.menu_code, delta.status,
        sum(delta.interventions), sum(delta.amount_thb)
    FROM json_to_recordset(CAST(CAST(:rows AS TEXT) AS JSON)) AS delta(
        area_code TEXT, menu_code TEXT, status TEXT, interventions BIGINT, amount_thb NUMERIC)
    CROSS JOIN LATERAL (
        SELECT '{COUNTRY}' UNION ALL
        SELECT left(delta.area_code, n) FROM unnest('{{2,4,6,8}}'::INT[]) AS n
        WHERE n <= length(delta.area_code)
    ) AS above(area_code)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (area_code, menu_code, status) DO UPDATE SET
        interventions = menu_progress.interventions + excluded.interventions,
        amount_thb = menu_progress.amount_thb + excluded.amount_thb""")


class AnalyticsRepository:
    """Reads and writes the projections; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def hold_projections(self) -> None:
        """Wait while a rebuild swaps the tables (the swap holds this lock exclusively)."""
        await run(self.session, sa.select(sa.func.pg_advisory_xact_lock_shared(PROJECTION_LOCK)))

    async def lock_facts(self, households: set[UUID], interventions: set[UUID]) -> None:
        """Serialize the transactions that change the same facts, even before their rows exist
        (a row lock cannot: two consumers could each find no row and each insert one). One
        statement, in key order, so two batches never wait on each other in a circle."""
        space = int(self.session.info.get(LOCK_SPACE, 0))
        keys = sorted(
            {(space + HOUSEHOLD_LOCK, _lock_key(h)) for h in households}
            | {(space + INTERVENTION_LOCK, _lock_key(i)) for i in interventions}
        )
        if not keys:
            return
        ordered = (
            sa.select(
                sa.func.unnest(sa.cast([k for k, _ in keys], ARRAY(sa.Integer))).label("kind"),
                sa.func.unnest(sa.cast([v for _, v in keys], ARRAY(sa.Integer))).label("key"),
            )
            .order_by("kind", "key")
            .subquery()
        )
        await run(
            self.session,
            sa.select(sa.func.pg_advisory_xact_lock(ordered.c.kind, ordered.c.key)),
        )

    async def households(self, ids: set[UUID]) -> dict[UUID, HouseholdFact]:
        return {
            row.household_id: HouseholdFact(
                area_code=row.area_code,
                registered=row.registered,
                status=row.status,
                status_at=row.status_at,
                area_at=row.area_at,
                dimensions=list(row.dimensions),
                live=dict(row.live),
            )
            for row in await self._facts(household_facts.c.household_id, ids)
        }

    async def interventions(self, ids: set[UUID]) -> dict[UUID, InterventionFact]:
        return {
            row.intervention_id: InterventionFact(
                household_id=row.household_id,
                area_code=row.area_code,
                dimension=row.dimension,
                menu_code=row.menu_code,
                status=row.status,
                amount_thb=row.amount_thb,
                superseded=row.superseded,
            )
            for row in await self._facts(intervention_facts.c.intervention_id, ids)
        }

    async def _facts(self, key: sa.Column[Any], ids: set[UUID]) -> Sequence[Any]:
        """The rows of a fact table with these ids: one statement, one array parameter."""
        if not ids:
            return []
        statement = sa.select(key.table).where(key == sa.any_(sa.cast(list(ids), ARRAY(sa.Uuid))))
        return (await run(self.session, statement)).all()

    async def save_households(self, facts: dict[UUID, HouseholdFact]) -> None:
        """Insert or replace many household facts in one statement."""
        if not facts:
            return
        ids = sorted(facts)
        rows = [facts[i] for i in ids]
        source = sa.select(
            _unnest(sa.Uuid, ids, "household_id"),
            _unnest(sa.Text, [f.area_code for f in rows], "area_code"),
            _unnest(sa.Boolean, [f.registered for f in rows], "registered"),
            _unnest(sa.Text, [f.status for f in rows], "status"),
            _unnest(sa.DateTime(timezone=True), [f.status_at for f in rows], "status_at"),
            _unnest(sa.DateTime(timezone=True), [f.area_at for f in rows], "area_at"),
            # Arrays of arrays would flatten: each row's dimensions travel as one string.
            sa.func.string_to_array(
                _unnest(sa.Text, [",".join(f.dimensions) for f in rows]), ","
            ).label("dimensions"),
            sa.cast(_unnest(sa.Text, [json.dumps(f.live) for f in rows]), JSONB).label("live"),
        )
        await self._replace(household_facts, "household_id", source)

    async def save_interventions(self, facts: dict[UUID, InterventionFact]) -> None:
        """Insert or replace many intervention facts in one statement."""
        if not facts:
            return
        ids = sorted(facts)
        rows = [facts[i] for i in ids]
        source = sa.select(
            _unnest(sa.Uuid, ids, "intervention_id"),
            _unnest(sa.Uuid, [f.household_id for f in rows], "household_id"),
            _unnest(sa.Text, [f.area_code for f in rows], "area_code"),
            _unnest(sa.Text, [f.dimension for f in rows], "dimension"),
            _unnest(sa.Text, [f.menu_code for f in rows], "menu_code"),
            _unnest(sa.Text, [f.status for f in rows], "status"),
            _unnest(sa.Numeric, [f.amount_thb for f in rows], "amount_thb"),
            _unnest(sa.Boolean, [f.superseded for f in rows], "superseded"),
        )
        await self._replace(intervention_facts, "intervention_id", source)

    async def _replace(self, table: sa.Table, key: str, source: sa.Select[Any]) -> None:
        columns = [c.name for c in source.selected_columns]
        statement = insert(table).from_select(columns, source)
        await run(
            self.session,
            statement.on_conflict_do_update(
                index_elements=[key],
                set_={c: statement.excluded[c] for c in columns if c != key},
            ),
        )

    async def add_to_totals(
        self, cells: dict[tuple[str, str, date], dict[str, Any]], as_of: dict[str, datetime]
    ) -> None:
        """Add deltas to the totals and to their months' net changes, each (area, dimension,
        month) row to that area and every area above it; `as_of` moves to the newest event
        time in each area and every area above it. One statement, however many rows."""
        rows = [
            {"area_code": area, "dimension": dimension, "month": month}
            | {m: v for m, v in deltas.items() if v}
            for (area, dimension, month), deltas in cells.items()
        ]
        rows += [{"area_code": area, "dimension": ALL, "as_of": t} for area, t in as_of.items()]
        if not rows:
            return
        await run(self.session, ADD_TO_TOTALS.bindparams(rows=_json(rows)))

    async def add_to_menus(self, rows: dict[tuple[str, str, str], tuple[int, Decimal]]) -> None:
        """Add each (area, menu, status) row's interventions and THB to that area and every
        area above it, in one statement."""
        if not rows:
            return
        payload = _json(
            [
                {
                    "area_code": area,
                    "menu_code": menu,
                    "status": status,
                    "interventions": count,
                    "amount_thb": thb,
                }
                for (area, menu, status), (count, thb) in rows.items()
            ]
        )
        await run(self.session, ADD_TO_MENUS.bindparams(rows=payload))

    # Queries

    async def area(self, code: str) -> Any:
        return (await run(self.session, sa.select(areas).where(areas.c.code == code))).first()

    async def children(self, code: str) -> Sequence[Any]:
        return (
            await run(
                self.session,
                sa.select(areas).where(areas.c.parent_code == code).order_by(areas.c.code),
            )
        ).all()

    async def progress(self, codes: Sequence[str]) -> Sequence[Any]:
        return (
            await run(
                self.session, sa.select(area_progress).where(area_progress.c.area_code.in_(codes))
            )
        ).all()

    async def menus(self, code: str) -> Sequence[Any]:
        return (
            await run(
                self.session,
                sa.select(menu_progress)
                .where(menu_progress.c.area_code == code)
                .order_by(menu_progress.c.menu_code, menu_progress.c.status),
            )
        ).all()

    async def seen_children(self, code: str) -> Sequence[str]:
        """Villages (known only from events) under a sub-district."""
        rows = (
            await run(
                self.session,
                sa.select(area_progress.c.area_code)
                .distinct()
                .where(
                    area_progress.c.area_code.like(f"{code}__"),
                    sa.func.length(area_progress.c.area_code) == len(code) + 2,
                ),
            )
        ).all()
        return [r[0] for r in rows]

    async def months(self, code: str, dimension: str, until: date) -> Sequence[Any]:
        """The area's net change per month, up to and including `until`, oldest first."""
        return (
            await run(
                self.session,
                sa.select(area_month)
                .where(
                    area_month.c.area_code == code,
                    area_month.c.dimension == dimension,
                    area_month.c.month <= until,
                )
                .order_by(area_month.c.month),
            )
        ).all()
