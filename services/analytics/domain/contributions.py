"""What one household or one intervention adds to the totals of its areas.

Totals change by the difference between a fact's contribution after an event and before it, so
an update is a handful of rows whatever the history, and the order in which the two streams
deliver their events does not change the result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from shared.thai import COUNTRY, area_level

ALL = "all"
# (area code, dimension or "all" or "menu:CODE", measure): one number in the totals.
Cell = tuple[str, str, str]
LIVE_STATUSES = frozenset({"planned", "in_progress", "completed"})
STATUSES = ("planned", "in_progress", "completed", "cancelled")
# A status is only replaced by a later one, whatever order its events arrive in.
STATUS_RANK = {"planned": 0, "in_progress": 1, "completed": 2, "cancelled": 2}


def areas_of(area_code: str) -> list[str]:
    """The area and every area above it, up to the whole country."""
    area_level(area_code)
    return [COUNTRY, *(area_code[:n] for n in (2, 4, 6, 8) if n <= len(area_code))]


@dataclass
class HouseholdFact:
    area_code: str
    registered: bool = False
    status: str | None = None
    status_at: datetime | None = None  # the time of the status event that set `status`
    dimensions: list[str] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)

    def contribution(self) -> Counter[Cell]:
        """(area, dimension, measure) → 1 for what this household counts in."""
        counts: Counter[Cell] = Counter()
        if not self.registered or self.status == "duplicate":
            return counts
        reached_in = {d for d, n in self.live.items() if n > 0}
        for area in areas_of(self.area_code):
            counts[(area, ALL, "target_households")] += 1
            if reached_in:
                counts[(area, ALL, "reached_households")] += 1
            if self.status == "graduated":
                counts[(area, ALL, "graduated_households")] += 1
            for dimension in self.dimensions:
                counts[(area, dimension, "target_households")] += 1
                if self.status == "graduated":
                    counts[(area, dimension, "graduated_households")] += 1
            for dimension in reached_in:
                counts[(area, dimension, "reached_households")] += 1
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

    def contribution(self) -> tuple[Counter[Cell], dict[tuple[str, ...], Decimal]]:
        """Counts by (area, dimension, status) and by (area, "menu", menu, status); and THB
        delivered by (area, dimension) and by (area, "menu", menu, "completed")."""
        counts: Counter[Cell] = Counter()
        amounts: dict[tuple[str, ...], Decimal] = {}
        if not self.counted():
            return counts, amounts
        assert self.status is not None
        delivered = self.amount_thb if self.status == "completed" and self.amount_thb else None
        for area in areas_of(self.area_code):
            for dimension in (ALL, self.dimension):
                counts[(area, dimension, self.status)] += 1
                if delivered:
                    amounts[(area, dimension)] = delivered
            counts[(area, f"menu:{self.menu_code}", self.status)] += 1
            if delivered:
                amounts[(area, f"menu:{self.menu_code}")] = delivered
        return counts, amounts


def difference(new: Counter[Cell], old: Counter[Cell]) -> dict[Cell, int]:
    """new − old, keeping only what changed."""
    keys = set(new) | set(old)
    return {k: new[k] - old[k] for k in keys if new[k] != old[k]}
