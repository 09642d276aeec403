"""The analytics API's schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class InterventionCounts(BaseModel):
    planned: int = 0
    in_progress: int = 0
    completed: int = 0
    cancelled: int = 0


class Totals(BaseModel):
    target_households: int = 0
    reached_households: int = 0
    graduated_households: int = 0
    interventions: InterventionCounts = Field(default_factory=InterventionCounts)
    amount_thb: Decimal = Field(default=Decimal("0.00"), description="THB delivered (completed)")
    reached_ratio: float | None = Field(description="reached / target; null without targets")
    graduated_ratio: float | None = Field(description="graduated / target")


class MenuTotals(BaseModel):
    menu_code: str
    status: str
    interventions: int
    amount_thb: Decimal


class Progress(Totals):
    area_code: str
    level: str
    name_th: str
    name_en: str | None
    dimensions: dict[str, Totals]
    menus: list[MenuTotals]
    as_of: datetime | None = Field(description="Time of the newest event applied here")


class Change(BaseModel):
    """Net change during a month: households that became targets, reached or graduated, and
    interventions that entered (+) or left (−) each status; THB delivered in the month."""

    target_households: int = 0
    reached_households: int = 0
    graduated_households: int = 0
    interventions: InterventionCounts = Field(default_factory=InterventionCounts)
    amount_thb: Decimal = Decimal("0.00")


class MonthProgress(Totals):
    """The area's totals at the end of a month, and how they changed during it."""

    month: str = Field(description="YYYY-MM, Thai time", examples=["2026-10"])
    change: Change


class ProgressSeries(BaseModel):
    area_code: str
    level: str
    name_th: str
    name_en: str | None
    dimension: str = Field(description="A dimension, or `all`")
    months: list[MonthProgress]
