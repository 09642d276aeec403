"""The proof's last check: every total analytics shows equals the registry's and logbook's records.

The expected totals are computed from the owning services' own tables (set-based SQL per
village, rolled up to sub-district, district, province and country here), with the rules of
tests/analytics/support.py `expected_totals`: a household counts unless marked duplicate; it is
reached when it has a live intervention (planned, in progress or completed, not superseded);
interventions count by status unless superseded; the amount is that of completed ones. They are
compared with `GET /v1/progress/TH`, the children of the country (provinces), of every province
(districts) and of a sample of districts (sub-districts): every measure, overall and per dimension.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from shared.indicators import INDICATORS_BY_CODE

STATUSES = ("planned", "in_progress", "completed", "cancelled")
LIVE = ("planned", "in_progress", "completed")
ALL = "all"
HOUSEHOLD_MEASURES = ("target_households", "reached_households", "graduated_households")


def _areas_of(area_code: str) -> list[str]:
    return ["TH", *(area_code[:n] for n in (2, 4, 6, 8) if n <= len(area_code))]


class Expected:
    """Totals by (area, dimension or `all`): household counts, interventions by status, THB."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.amounts: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)

    def totals(self, area: str, dimension: str = ALL) -> dict[str, Any]:
        return {
            **{m: self.counts[(area, dimension, m)] for m in HOUSEHOLD_MEASURES},
            "interventions": {s: self.counts[(area, dimension, s)] for s in STATUSES},
            "amount_thb": f"{self.amounts[(area, dimension)]:.2f}",
        }


async def expected_totals(registry_dsn: str, logbook_dsn: str) -> Expected:
    """What every area's progress must say, from the registry's and the logbook's tables."""
    logbook = await asyncpg.connect(logbook_dsn)
    try:
        live_rows = await logbook.fetch(
            """SELECT household_id, array_agg(DISTINCT dimension) AS dimensions
                FROM intervention i
                WHERE status = ANY($1::text[])
                  AND NOT EXISTS (SELECT 1 FROM intervention s WHERE s.supersedes = i.id)
                GROUP BY household_id""",
            list(LIVE),
        )
        intervention_rows = await logbook.fetch(
            """SELECT area_code, dimension, status, count(*) AS n,
                      coalesce(sum(amount_thb) FILTER (WHERE status = 'completed'), 0) AS thb
               FROM intervention i
               WHERE NOT EXISTS (SELECT 1 FROM intervention s WHERE s.supersedes = i.id)
               GROUP BY area_code, dimension, status"""
        )
    finally:
        await logbook.close()
    reached = {row["household_id"]: set(row["dimensions"]) for row in live_rows}
    expected = Expected()
    registry = await asyncpg.connect(registry_dsn)
    try:
        async with registry.transaction():
            cursor = registry.cursor(
                "SELECT id, area_code, status, failed_indicators FROM household"
                " WHERE status <> 'duplicate'",
                prefetch=10_000,
            )
            async for row in cursor:
                dimensions = {
                    INDICATORS_BY_CODE[c].dimension.value for c in row["failed_indicators"]
                }
                reached_in = reached.get(row["id"], set())
                graduated = row["status"] == "graduated"
                for area in _areas_of(row["area_code"]):
                    expected.counts[(area, ALL, "target_households")] += 1
                    expected.counts[(area, ALL, "reached_households")] += bool(reached_in)
                    expected.counts[(area, ALL, "graduated_households")] += graduated
                    for dimension in dimensions:
                        expected.counts[(area, dimension, "target_households")] += 1
                        expected.counts[(area, dimension, "graduated_households")] += graduated
                    for dimension in reached_in:
                        expected.counts[(area, dimension, "reached_households")] += 1
    finally:
        await registry.close()
    for row in intervention_rows:
        for area in _areas_of(row["area_code"]):
            for dimension in (ALL, row["dimension"]):
                expected.counts[(area, dimension, row["status"])] += row["n"]
                expected.amounts[(area, dimension)] += row["thb"]
    return expected


def _shown(progress: dict[str, Any]) -> dict[str, Any]:
    return {
        **{m: progress[m] for m in HOUSEHOLD_MEASURES},
        "interventions": progress["interventions"],
        "amount_thb": f"{Decimal(progress['amount_thb']):.2f}",
    }


def _differences(progress: dict[str, Any], expected: Expected) -> list[str]:
    area = progress["area_code"]
    found = []
    for dimension, shown in [(ALL, progress), *progress["dimensions"].items()]:
        want = expected.totals(area, dimension)
        got = _shown(shown)
        if got != want:
            found.append(f"{area}/{dimension}: analytics {got} != records {want}")
    return found


async def compare(
    analytics: httpx.AsyncClient, expected: Expected, *, sampled_districts: int, seed: int = 5
) -> dict[str, Any]:
    """Every measure of the country, every province, every district and the sub-districts of
    `sampled_districts` districts (those with households), analytics against the records."""

    async def get(path: str) -> Any:
        response = await analytics.get(path)
        response.raise_for_status()
        return response.json()

    rows = [await get("/v1/progress/TH")]
    provinces = await get("/v1/progress/TH/children")
    rows += provinces
    districts: list[dict[str, Any]] = []
    for province in provinces:
        code = province["area_code"]
        if province["target_households"] or expected.counts[(code, ALL, "target_households")]:
            districts += await get(f"/v1/progress/{code}/children")
    rows += districts
    with_households = sorted(d["area_code"] for d in districts if d["target_households"])
    chosen = random.Random(seed).sample(
        with_households, min(sampled_districts, len(with_households))
    )
    for district in chosen:
        rows += await get(f"/v1/progress/{district}/children")
    mismatches = [m for row in rows for m in _differences(row, expected)]
    # Provinces without households were not opened: their districts must be empty too.
    listed = {row["area_code"] for row in rows}
    unlisted = [
        area
        for (area, dimension, _), n in expected.counts.items()
        if n and dimension == ALL and len(area) <= 4 and area not in listed
    ]
    mismatches += [f"{area}: in the records, not shown" for area in sorted(set(unlisted))]
    return {
        "areas_compared": len(rows),
        "cells_compared": sum(1 + len(row["dimensions"]) for row in rows) * 8,
        "districts_sampled_for_subdistricts": len(chosen),
        "mismatches": mismatches[:50],
        "mismatch_count": len(mismatches),
        "equal": not mismatches,
    }
