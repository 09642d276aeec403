"""What one household or one intervention adds to the totals of its areas.

Totals change by the difference between a fact's contribution after an event and before it, so
an update is a handful of rows whatever the history, and the order in which the two streams
deliver their events does not change the result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from shared.thai import COUNTRY, area_level

K = TypeVar("K")

ALL = "all"
# (area code, dimension or "all" or "menu:CODE", measure): one number in the totals.
Cell = tuple[str, str, str]
# (dimension or "all", measure): one number a fact adds to its own area and to every area
# above it alike; the areas are added when the totals are written.
Share = tuple[str, str]
LIVE_STATUSES = frozenset({"planned", "in_progress", "completed"})
STATUSES = ("planned", "in_progress", "completed", "cancelled")
# A status is only replaced by a later one, whatever order its events arrive in.
STATUS_RANK = {"planned": 0, "in_progress": 1, "completed": 2, "cancelled": 2}


@lru_cache(maxsize=200_000)  # about 90,000 villages and the areas above them
def areas_of(area_code: str) -> tuple[str, ...]:
    """The area and every area above it, up to the whole country (a bad code raises)."""
    area_level(area_code)
    return (COUNTRY, *(area_code[:n] for n in (2, 4, 6, 8) if n <= len(area_code)))


def _count(counts: dict[Share, int], key: Share) -> None:
    # A plain dict rather than a Counter: contributions are worked out twice for most events,
    # and a Counter's construction and `+=` took about three times as long.
    counts[key] = counts.get(key, 0) + 1


@dataclass
class HouseholdFact:
    area_code: str
    registered: bool = False
    status: str | None = None
    status_at: datetime | None = None  # the time of the status event that set `status`
    # The time of the update that set `area_code` and `dimensions`; None while only the
    # registration (or an intervention heard of first) set them.
    area_at: datetime | None = None
    dimensions: list[str] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)

    def contribution(self) -> dict[Share, int]:
        """(dimension, measure) → 1 for what this household counts in, in each of its areas."""
        counts: dict[Share, int] = {}
        if not self.registered or self.status == "duplicate":
            return counts
        graduated = self.status == "graduated"
        reached = {d for d, n in self.live.items() if n > 0}
        _count(counts, (ALL, "target_households"))
        if reached:
            _count(counts, (ALL, "reached_households"))
        if graduated:
            _count(counts, (ALL, "graduated_households"))
        for dimension in self.dimensions:
            _count(counts, (dimension, "target_households"))
            if graduated:
                _count(counts, (dimension, "graduated_households"))
        for dimension in reached:
            _count(counts, (dimension, "reached_households"))
        return counts


@dataclass
class InterventionFact:
    household_id: UUID
    area_code: str
    dimension: str
    menu_code: str
    status: str | None
    amount_thb: Decimal | None
    superseded: bool = False

    @property
    def live(self) -> bool:
        return not self.superseded and self.status in LIVE_STATUSES

    def counted(self) -> bool:
        return not self.superseded and self.status is not None

    def contribution(self) -> tuple[dict[Share, int], dict[str, Decimal]]:
        """In each of its areas: counts by (dimension or "all" or "menu:CODE", status); and THB
        delivered by dimension or "all" or "menu:CODE"."""
        counts: dict[Share, int] = {}
        amounts: dict[str, Decimal] = {}
        if not self.counted():
            return counts, amounts
        assert self.status is not None
        delivered = self.amount_thb if self.status == "completed" and self.amount_thb else None
        menu = f"menu:{self.menu_code}"
        for key in (ALL, self.dimension, menu):
            _count(counts, (key, self.status))
            if delivered:
                amounts[key] = delivered
        return counts, amounts


def changes(
    old_area: str, old: Mapping[K, Any], new_area: str, new: Mapping[K, Any]
) -> Iterator[tuple[str, K, Any]]:
    """(area, key, new − old) for every number that changed when a fact went from `old` in
    `old_area` to `new` in `new_area`; the areas above them change alike."""
    if old_area == new_area:
        for key in new.keys() | old.keys():
            delta = new.get(key, 0) - old.get(key, 0)
            if delta:
                yield new_area, key, delta
        return
    for key, value in old.items():
        if value:
            yield old_area, key, -value
    for key, value in new.items():
        if value:
            yield new_area, key, value
