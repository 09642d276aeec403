"""Progress of an area and of its children, read from the projections (never a recount)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from services.analytics.domain.contributions import ALL, STATUSES
from services.analytics.repository import MEASURES, AnalyticsRepository
from services.analytics.schemas import (
    Change,
    InterventionCounts,
    MenuTotals,
    MonthProgress,
    Progress,
    ProgressSeries,
    Totals,
)
from shared.auth import Caller
from shared.errors import ResourceNotFound
from shared.indicators import Dimension

CENTS = Decimal("0.01")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _counts(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "target_households": values["target_households"],
        "reached_households": values["reached_households"],
        "graduated_households": values["graduated_households"],
        "interventions": InterventionCounts(**{s: values[s] for s in STATUSES}),
        "amount_thb": Decimal(values["amount_thb"]).quantize(CENTS),
    }


def _totals_of(values: Mapping[str, Any]) -> Totals:
    return Totals(
        **_counts(values),
        reached_ratio=_ratio(values["reached_households"], values["target_households"]),
        graduated_ratio=_ratio(values["graduated_households"], values["target_households"]),
    )


def _totals(row: Any | None) -> Totals:
    if row is None:
        return Totals(reached_ratio=None, graduated_ratio=None)
    return _totals_of(row._mapping)


def _progress(area: Any, rows: list[Any], menus: list[Any]) -> Progress:
    by_dimension = {row.dimension: row for row in rows}
    overall = by_dimension.get(ALL)
    return Progress(
        area_code=area.code,
        level=area.level,
        name_th=area.name_th,
        name_en=area.name_en,
        **_totals(overall).model_dump(),
        dimensions={d.value: _totals(by_dimension.get(d.value)) for d in Dimension},
        menus=[
            MenuTotals(
                menu_code=m.menu_code,
                status=m.status,
                interventions=m.interventions,
                amount_thb=Decimal(m.amount_thb).quantize(CENTS),
            )
            for m in menus
            if m.interventions
        ],
        as_of=overall.as_of if overall is not None else None,
    )


async def _area(repo: AnalyticsRepository, caller: Caller, code: str) -> Any:
    area = await repo.area(code) if caller.sees(code) else None
    if area is None and caller.sees(code) and len(code) == 8:
        seen = await repo.progress([code])
        if seen:  # a village, known from the events about it
            area = _Village(code)
    if area is None:
        raise ResourceNotFound(f"no area {code}")
    return area


class _Village:
    def __init__(self, code: str) -> None:
        self.code, self.level, self.name_th, self.name_en = code, "village", code, None


async def area_progress(repo: AnalyticsRepository, caller: Caller, code: str) -> Progress:
    """One area's totals, overall and by dimension, with its menus."""
    area = await _area(repo, caller, code)
    return _progress(area, list(await repo.progress([code])), list(await repo.menus(code)))


async def children_progress(repo: AnalyticsRepository, caller: Caller, code: str) -> list[Progress]:
    """One row per child area, sorted by graduated ratio (highest first), then code."""
    area = await _area(repo, caller, code)
    children: list[Any] = list(await repo.children(area.code))
    if area.level == "subdistrict":
        children += [_Village(c) for c in await repo.seen_children(area.code)]
    rows = await repo.progress([c.code for c in children])
    by_area: dict[str, list[Any]] = {}
    for row in rows:
        by_area.setdefault(row.area_code, []).append(row)
    result = [_progress(child, by_area.get(child.code, []), []) for child in children]
    result.sort(key=lambda p: (-(p.graduated_ratio or 0.0), p.area_code))
    return result


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def series(
    repo: AnalyticsRepository, caller: Caller, code: str, dimension: str, first: date, last: date
) -> ProgressSeries:
    """The area's totals at the end of each month from `first` to `last`, and each month's
    net change: a running sum over the monthly changes, a few dozen rows at most."""
    area = await _area(repo, caller, code)
    running: dict[str, Any] = dict.fromkeys(MEASURES, 0) | {"amount_thb": Decimal(0)}
    changes = {row.month: row._mapping for row in await repo.months(code, dimension, last)}
    for month, change in changes.items():
        if month < first:
            for measure in running:
                running[measure] += change[measure]
    months = []
    month = first
    while True:
        change = changes.get(month)
        if change is not None:
            for measure in running:
                running[measure] += change[measure]
        months.append(
            MonthProgress(
                month=f"{month.year:04}-{month.month:02}",  # %Y leaves years before 1000 short
                **_totals_of(running).model_dump(),
                change=Change(**_counts(change)) if change is not None else Change(),
            )
        )
        if month >= last:  # never past it: the month after 9999-12 does not exist
            break
        month = next_month(month)
    return ProgressSeries(
        area_code=area.code,
        level=area.level,
        name_th=area.name_th,
        name_en=area.name_en,
        dimension=dimension,
        months=months,
    )
