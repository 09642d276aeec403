"""A realistic logbook history for the demo province, written through the logbook's own rules.

Every visit, intervention and status change goes through the domain functions a request would
call (one transaction per household), so the events flow and every later total agrees.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.domain import interventions, visits
from services.logbook.domain.context import SOURCE, Context
from services.logbook.models import MenuItem
from services.logbook.registry_client import RegistryClient
from services.logbook.repository import LogbookRepository
from services.logbook.schemas import (
    Analysis,
    Capitals,
    InterventionCreate,
    InterventionStatus,
    Problem,
    StatusUpdate,
    VisitCreate,
)
from services.logbook.settings import LogbookSettings
from shared.auth import Caller, Role
from shared.db import transaction
from shared.indicators import INDICATORS_BY_CODE, Dimension
from shared.outbox import Outbox

ATTITUDES = ("อยากพ้นจน พร้อมเรียนรู้", "ยังไม่มั่นใจ ต้องการกำลังใจ", "ขยัน อยากมีอาชีพเสริม")
SKILLS = ("ทำนา เลี้ยงไก่", "รับจ้างทั่วไป", "จักสาน ทำขนม", "ค้าขายเล็กน้อย")
RESOURCES = ("มีที่ดินทำกิน 3 ไร่", "ไม่มีที่ดิน เช่าบ้านอยู่", "มีบ่อน้ำและสวนหลังบ้าน")
WAYS_OUT = ("ฝึกอาชีพและหาตลาด", "เข้าถึงสวัสดิการที่มีสิทธิ", "ปลูกผักสวนครัวลดรายจ่าย")
AMOUNTS = {
    Dimension.income: (600, 5000),
    Dimension.living: (2000, 30000),
    Dimension.health: (0, 1500),
    Dimension.education: (500, 4000),
    Dimension.public_access: (600, 1000),
}


def _problems(rng: random.Random, failed: Sequence[str]) -> list[Problem]:
    return [
        Problem(
            dimension=INDICATORS_BY_CODE[code].dimension,
            indicator=code,
            note=INDICATORS_BY_CODE[code].name_th,
        )
        for code in failed
        if code in INDICATORS_BY_CODE
    ]


async def load_history(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: LogbookSettings,
    households: Sequence[tuple[UUID, UUID, str, list[str]]],
    *,
    seed: int = 2566,
    today: date | None = None,
) -> tuple[dict[str, int], list[UUID]]:
    """Visit most households and help them.

    `households` holds (household id, mentor team id, area code, failed indicator codes).
    Returns how many of each entry were written, and the households whose follow-up visit
    found nothing failing (a district officer may now confirm their graduation).
    """
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    registry = RegistryClient(settings.registry_url, settings.internal_key.get_secret_value())
    written = {"visits": 0, "interventions": 0, "status_changes": 0, "follow_ups": 0}
    ready: list[UUID] = []
    try:
        async with sessionmaker() as session:
            menus = await LogbookRepository(session).list_menus(None)
        by_dimension: dict[str, list[MenuItem]] = {}
        for item in menus:
            by_dimension.setdefault(item.dimension, []).append(item)
        for household_id, team_id, area_code, failed in households:
            if rng.random() > 0.85:
                continue  # not visited yet: first on the team's worklist
            caller = Caller(
                subject=f"demo-mentor:{team_id}",
                role=Role.mentor,
                area=area_code[:6],
                team_id=team_id,
            )
            async with transaction(sessionmaker) as session:
                ctx = Context(
                    caller=caller,
                    repo=LogbookRepository(session),
                    outbox=Outbox(session, source=SOURCE, namespace=settings.events_namespace),
                    registry=registry,
                    settings=settings,
                )
                if await _history(ctx, rng, household_id, failed, by_dimension, today, written):
                    ready.append(household_id)
    finally:
        await registry.aclose()
    return written, ready


async def _history(
    ctx: Context,
    rng: random.Random,
    household_id: UUID,
    failed: list[str],
    by_dimension: dict[str, list[MenuItem]],
    today: date,
    written: dict[str, int],
) -> bool:
    visited_at = datetime.combine(
        today - timedelta(days=rng.randint(20, 330)), datetime.min.time(), UTC
    ) + timedelta(hours=rng.randint(8, 16))
    problems = _problems(rng, failed)
    await visits.record_visit(
        ctx,
        household_id,
        VisitCreate(
            visited_at=visited_at,
            analysis=Analysis(
                attitude=rng.choice(ATTITUDES),
                skills=rng.choice(SKILLS),
                resources=rng.choice(RESOURCES),
                way_out=rng.choice(WAYS_OUT),
            ),
            capitals=Capitals(
                human=rng.randint(1, 5),
                physical=rng.randint(1, 4),
                economic=rng.randint(1, 3),
                natural=rng.randint(1, 5),
                social=rng.randint(2, 5),
            ),
            problems=problems,
            note=None,
        ),
    )
    written["visits"] += 1
    statuses: list[InterventionStatus] = []
    for problem in problems:
        if rng.random() < 0.15:
            continue  # found, but nothing planned yet
        menu = rng.choice(by_dimension[problem.dimension.value])
        low, high = AMOUNTS[problem.dimension]
        outcome = rng.choices(list(InterventionStatus), weights=(25, 20, 45, 10))[0]
        done_at = visited_at + timedelta(days=rng.randint(7, 60))
        completed = outcome is InterventionStatus.completed and done_at.date() < today
        entry = await interventions.record_intervention(
            ctx,
            InterventionCreate(
                household_id=household_id,
                dimension=problem.dimension,
                menu_code=menu.code,
                description=menu.name_th,
                amount_thb=Decimal(rng.randrange(low, high + 1, 100)),
                status=InterventionStatus.completed if completed else InterventionStatus.planned,
                planned_for=(visited_at + timedelta(days=14)).date(),
                completed_at=done_at if completed else None,
            ),
        )
        written["interventions"] += 1
        if not completed and outcome is not InterventionStatus.planned:
            step = (
                InterventionStatus.cancelled
                if outcome is InterventionStatus.cancelled
                else InterventionStatus.in_progress
            )
            await interventions.change_status(ctx, entry.id, StatusUpdate(status=step))
            written["status_changes"] += 1
        statuses.append(InterventionStatus.completed if completed else outcome)
    if statuses and all(s is InterventionStatus.completed for s in statuses) and rng.random() < 0.6:
        # The follow-up visit that finds nothing failing: such households may graduate.
        await visits.record_visit(
            ctx,
            household_id,
            VisitCreate(
                visited_at=min(
                    visited_at + timedelta(days=75),
                    datetime.combine(today, datetime.min.time(), UTC),
                ),
                analysis=Analysis(way_out="ติดตามผล: พ้นเกณฑ์ทุกตัวชี้วัด"),
                problems=[],
            ),
        )
        written["follow_ups"] += 1
        return True
    return False


async def known_households(
    sessionmaker: async_sessionmaker[AsyncSession], ids: Sequence[UUID]
) -> int:
    """How many of these households the logbook's read model holds (with their team)."""
    async with sessionmaker() as session:
        return await LogbookRepository(session).count_known(ids)


async def has_history(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        return await LogbookRepository(session).has_any_visit()
