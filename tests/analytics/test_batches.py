"""A batch of events applied in one transaction leaves the same totals as one event at a time.

The events are applied straight through the consumers' `apply` (no NATS): once as two batches
(all registry events in one transaction, all logbook events in another), and once one event per
transaction, each into a database of its own. Every row of every projection must match, and a
few totals worked out by hand must come out: households that move (within a sub-district and to
another province), a late status change, a late move, a move delivered before its household's
registration, duplicates, supersessions, THB with satang.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.analytics import events as analytics
from services.analytics.repository import MEASURES
from services.analytics.settings import AnalyticsSettings
from shared.bus import Bus
from shared.consumer import Consumer
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import Event, EventData, uuid7
from shared.events.logbook import (
    InterventionRecorded,
    InterventionStatusChanged,
    InterventionSuperseded,
)
from shared.events.registry import HouseholdRegistered, HouseholdStatusChanged, HouseholdUpdated
from tests.conftest import Servers, db_rows, fresh_database, settings_for

START = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)  # 23:30 Thai time, the last of March
APRIL = START + timedelta(hours=1)  # 00:30 on 1 April, Thai time
MAY = START + timedelta(days=35)
A, B, C, D, E, F, G = (uuid7() for _ in range(7))
I1, I2, I3, I4, I5, I6, I7, I8 = (uuid7() for _ in range(8))


class History:
    """Events with times of their own, in the order their streams hold them."""

    def __init__(self) -> None:
        self.registry: list[Event] = []
        self.logbook: list[Event] = []

    def add(self, data: EventData, area: str, minutes: int) -> None:
        source = data.type.split(".")[0]
        event = Event.of(data, source=source, subject=str(uuid7()), area_code=area)
        event = event.model_copy(update={"time": START + timedelta(minutes=minutes)})
        (self.registry if source == "registry" else self.logbook).append(event)


def registered(history: History, household: UUID, area: str, dims: list[str], at: int) -> None:
    history.add(
        HouseholdRegistered(
            household_id=household,
            area_code=area,
            house_code=None,
            status="target",
            survey_year=2567,
            failed_indicators=[],
            dimensions=dims,
            mentor_team_id=None,
            member_count=3,
        ),
        area,
        at,
    )


def moved(history: History, household: UUID, old: str, new: str, dims: list[str], at: int) -> None:
    history.add(
        HouseholdUpdated(
            household_id=household,
            area_code=new,
            previous_area_code=old,
            changed=["area_code", "dimensions"],
            failed_indicators=[],
            dimensions=dims,
        ),
        new,
        at,
    )


def status(history: History, household: UUID, area: str, to: str, at: int) -> None:
    history.add(
        HouseholdStatusChanged(
            household_id=household,
            area_code=area,
            from_status="target",
            to_status=to,
            reason=None,
            changed_by="district-officer",
        ),
        area,
        at,
    )


def facts(intervention: UUID, household: UUID, area: str, menu: str, thb: str) -> dict[str, Any]:
    dimension = {"INC": "income", "HLT": "health", "LIV": "living"}[menu[:3]]
    return {
        "intervention_id": intervention,
        "household_id": household,
        "area_code": area,
        "dimension": dimension,
        "menu_code": menu,
        "amount_thb": Decimal(thb),
    }


def recorded(
    history: History,
    fact: dict[str, Any],
    state: str,
    at: int,
    *,
    when: datetime = START,
    supersedes: UUID | None = None,
) -> None:
    history.add(
        InterventionRecorded(
            **fact,
            person_id=None,
            agency_id=None,
            status=state,
            planned_for=None,
            completed_at=when if state == "completed" else None,
            recorded_at=when,
            supersedes=supersedes,
        ),
        fact["area_code"],
        at,
    )


def changed(history: History, fact: dict[str, Any], to: str, at: int, when: datetime) -> None:
    history.add(
        InterventionStatusChanged(
            **fact, from_status="planned", to_status=to, changed_at=when, note=None
        ),
        fact["area_code"],
        at,
    )


def history() -> History:
    h = History()
    registered(h, A, "24010101", ["health", "income"], 0)
    registered(h, B, "24010102", ["living"], 1)
    registered(h, C, "24020101", ["income"], 2)
    registered(h, D, "24010101", ["health"], 3)
    registered(h, E, "24010102", ["education"], 4)
    moved(h, A, "24010101", "24010102", ["health", "income"], 5)  # within its sub-district
    moved(h, C, "24020101", "50010101", ["education", "income"], 6)  # to another province
    status(h, D, "24010101", "graduated", 10)
    status(h, D, "24010101", "in_progress", 8)  # older than the graduation, delivered late
    status(h, E, "24010102", "duplicate", 11)
    registered(h, F, "10010101", ["living"], 12)
    moved(h, F, "10010101", "10010102", ["living"], 14)
    moved(h, F, "10010101", "10010103", ["health"], 13)  # older than the move, delivered late
    moved(h, G, "10010101", "10020101", ["income"], 16)  # delivered before its registration
    registered(h, G, "10010101", ["living"], 15)

    i1 = facts(I1, A, "24010102", "INC-01", "1234.56")
    recorded(h, i1, "planned", 20)
    changed(h, i1, "completed", 21, APRIL)
    recorded(h, facts(I2, A, "24010102", "HLT-02", "99.99"), "completed", 22, when=START)
    recorded(h, facts(I3, B, "24010102", "LIV-01", "500.00"), "planned", 23)
    i4 = facts(I4, B, "24010102", "LIV-02", "750.25")
    recorded(h, i4, "completed", 24, when=MAY, supersedes=I3)
    i5 = facts(I5, C, "50010101", "INC-03", "10.10")
    recorded(h, i5, "in_progress", 25)
    changed(h, i5, "cancelled", 26, APRIL)
    i6 = facts(I6, D, "24010101", "HLT-01", "300.00")
    changed(h, i6, "completed", 27, MAY)  # before the intervention itself was heard of
    recorded(h, i6, "planned", 28)
    i7 = facts(I7, D, "24010101", "HLT-03", "40.00")
    h.add(
        InterventionSuperseded(**i7, superseded_by=I8, status="planned"),
        "24010101",
        29,
    )  # superseded before it was heard of: it never counts
    recorded(h, i7, "planned", 30)
    return h


def consumers(settings: AnalyticsSettings) -> tuple[Consumer, Consumer, Any]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    bus = Bus(settings.nats_url, name="analytics-test", namespace="batches.")
    made = [
        Consumer(
            bus,
            sessionmaker,
            stream=stream,
            durable=durable,
            handlers=handlers,
            on_begin=analytics.begin_live_batch,
            before_commit=analytics.write_batch,
        )
        for stream, durable, handlers in (
            ("REGISTRY", analytics.REGISTRY_DURABLE, analytics.REGISTRY_HANDLERS),
            ("LOGBOOK", analytics.LOGBOOK_DURABLE, analytics.LOGBOOK_HANDLERS),
        )
    ]
    return made[0], made[1], engine


async def apply(settings: AnalyticsSettings, batches: Sequence[tuple[int, list[Event]]]) -> None:
    """Apply each (consumer 0 or 1, events) in one transaction of that consumer."""
    registry, logbook, engine = consumers(settings)
    try:
        for which, events in batches:
            consumer = (registry, logbook)[which]
            async with transaction(consumer.sessionmaker) as session:
                assert await consumer.apply(session, events) == len(events)
    finally:
        await engine.dispose()


async def projections(settings: AnalyticsSettings) -> dict[str, list[dict[str, Any]]]:
    """Every row of the totals; of the monthly net changes, those that are not all 0 (a month
    whose changes cancel out within one transaction is never written)."""
    rows = {
        table: [dict(r) for r in await db_rows(settings, f"SELECT * FROM {table} ORDER BY 1, 2, 3")]
        for table in ("area_progress", "area_month", "menu_progress")
    }
    sums = (*MEASURES, "amount_thb")
    rows["area_month"] = [r for r in rows["area_month"] if any(r[m] for m in sums)]
    return rows


async def test_a_batch_adds_up_to_the_same_totals_as_one_event_at_a_time(
    servers: Servers, analytics_template: str, analytics_settings: AnalyticsSettings
) -> None:
    h = history()
    await apply(analytics_settings, [(0, h.registry), (1, h.logbook)])
    batched = await projections(analytics_settings)

    one_by_one = [(0, [e]) for e in h.registry] + [(1, [e]) for e in h.logbook]
    async with fresh_database(servers, analytics_template) as name:
        settings = settings_for(AnalyticsSettings, servers, name, "batches.")
        await apply(settings, one_by_one)
        assert await projections(settings) == batched

    progress = {(r["area_code"], r["dimension"]): r for r in batched["area_progress"]}
    th = progress[("TH", "all")]
    assert {m: th[m] for m in MEASURES} == {
        "target_households": 6,  # E is a duplicate
        "reached_households": 3,  # C's only intervention was cancelled
        "graduated_households": 1,  # D: the late in_progress changes nothing
        "planned": 0,
        "in_progress": 0,
        "completed": 4,  # I3 superseded by I4; I6 completed before it was recorded
        "cancelled": 1,
    }
    assert th["amount_thb"] == Decimal("2384.80")
    assert th["as_of"] == START + timedelta(minutes=30)
    assert progress[("TH", "income")]["target_households"] == 3  # A, C and G
    # The newest move stands, whatever came after it; a registration after it moves nothing.
    assert progress[("10010102", "living")]["target_households"] == 1  # F
    assert progress[("10020101", "income")]["target_households"] == 1  # G
    for never in (("10010103", "all"), ("10010101", "all"), ("10", "health")):
        assert progress.get(never, {}).get("target_households", 0) == 0, never
    assert progress[("10", "all")]["target_households"] == 2
    assert progress[("24010101", "all")]["target_households"] == 1  # A moved out
    assert progress[("24010102", "all")]["target_households"] == 2
    assert progress[("24010102", "all")]["amount_thb"] == Decimal("2084.80")
    assert progress[("240101", "all")]["target_households"] == 3  # A moved within it
    assert progress[("2402", "all")]["target_households"] == 0  # C moved away
    assert progress[("50", "income")]["cancelled"] == 1
    assert progress[("50", "education")]["target_households"] == 1

    # Each month's net changes add up to the totals, and completions count in their month
    # (Thai time: 00:30 on 1 April is April).
    running: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for row in batched["area_month"]:
        for measure in (*MEASURES, "amount_thb"):
            running[(row["area_code"], row["dimension"])][measure] += row[measure]
    for key, row in progress.items():
        assert {m: running[key][m] for m in (*MEASURES, "amount_thb")} == {
            m: row[m] for m in (*MEASURES, "amount_thb")
        }, key
    months = {
        (r["month"].month, r["dimension"]): r
        for r in batched["area_month"]
        if r["area_code"] == "TH"
    }
    assert months[(4, "income")]["amount_thb"] == Decimal("1234.56")
    assert months[(3, "health")]["amount_thb"] == Decimal("99.99")
    assert months[(5, "all")]["amount_thb"] == Decimal("1050.25")

    menus = {(r["area_code"], r["menu_code"], r["status"]): r for r in batched["menu_progress"]}
    assert menus[("TH", "INC-01", "completed")]["amount_thb"] == Decimal("1234.56")
    assert menus[("TH", "LIV-01", "planned")]["interventions"] == 0  # superseded
    assert menus[("24", "LIV-02", "completed")]["amount_thb"] == Decimal("750.25")
    assert ("TH", "HLT-03", "planned") not in menus
