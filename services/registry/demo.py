"""Demo data: the province of Chachoengsao (24) with its centres, teams and 6,461 households.

Generated from a fixed seed, so every machine gets the same demo. Written set-wise (one
statement per table), with the same events a registration through the API would publish.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.domain.context import SOURCE, Context
from services.registry.domain.households import change_status
from services.registry.models import Area, Household, Organization, Person, StatusChange
from services.registry.names import FEMALE_NAMES, MALE_NAMES, SURNAMES
from services.registry.repository import RegistryRepository
from services.registry.schemas import HouseholdStatus, StatusTransition
from shared.auth import Caller, Role
from shared.db import transaction
from shared.events import Event, uuid7
from shared.events.registry import HouseholdAssigned, HouseholdRegistered, OrganizationCreated
from shared.indicators import INDICATORS, Dimension, dimensions_of
from shared.outbox import Outbox
from shared.pii import CitizenIdVault
from shared.thai import citizen_id_check_digit, mask_citizen_id

PROVINCE = "24"
HOUSEHOLDS = 6_461  # Chachoengsao's target households in the 2022 list
DEMO_SUBJECT = "demo-loader"

AGENCIES = (
    ("สำนักงานพัฒนาชุมชนจังหวัดฉะเชิงเทรา", "กระทรวงมหาดไทย"),
    ("สำนักงานสาธารณสุขจังหวัดฉะเชิงเทรา", "กระทรวงสาธารณสุข"),
    ("สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัดฉะเชิงเทรา", "กระทรวงการพัฒนาสังคมและความมั่นคงของมนุษย์"),
    ("สำนักงานเกษตรจังหวัดฉะเชิงเทรา", "กระทรวงเกษตรและสหกรณ์"),
    ("สำนักงานแรงงานจังหวัดฉะเชิงเทรา", "กระทรวงแรงงาน"),
    ("สำนักงานศึกษาธิการจังหวัดฉะเชิงเทรา", "กระทรวงศึกษาธิการ"),
)
# How often each dimension's indicators fail in target households (income most often).
DIMENSION_WEIGHT = {
    Dimension.income: 6,
    Dimension.living: 3,
    Dimension.health: 2,
    Dimension.education: 2,
    Dimension.public_access: 1,
}


def _citizen_id(rng: random.Random) -> str:
    first = str(rng.choice((1, 3))) + "".join(str(rng.randrange(10)) for _ in range(11))
    return first + str(citizen_id_check_digit(first))


def _person(
    rng: random.Random,
    household_id: Any,
    relation: str,
    age: int,
    vault: CitizenIdVault,
    sex: str | None = None,
) -> dict[str, Any]:
    sex = sex or rng.choice(("male", "female"))
    first = rng.choice(MALE_NAMES if sex == "male" else FEMALE_NAMES)
    if age < 15:
        title = "เด็กชาย" if sex == "male" else "เด็กหญิง"
    else:
        title = "นาย" if sex == "male" else rng.choice(("นาง", "นางสาว"))
    born = date(2026, 1, 1) - timedelta(days=age * 365 + rng.randrange(365))
    digits = _citizen_id(rng)
    return {
        "id": uuid7(),
        "household_id": household_id,
        "title": title,
        "first_name": first,
        "last_name": "",
        "sex": sex,
        "birth_date": born,
        "relation": relation,
        "disability": rng.random() < 0.04,
        "welfare_card": age >= 18 and rng.random() < 0.85,
        "citizen_id_cipher": vault.encrypt(digits),
        "citizen_id_index": vault.blind_index(digits),
        "citizen_id_masked": mask_citizen_id(digits),
        "version": 1,
    }


def _members(rng: random.Random, household_id: Any, vault: CitizenIdVault) -> list[dict[str, Any]]:
    surname = rng.choice(SURNAMES)
    head_age = rng.randint(28, 82)
    people = [_person(rng, household_id, "head", head_age, vault)]
    if rng.random() < 0.7:
        spouse_sex = "female" if people[0]["sex"] == "male" else "male"
        people.append(
            _person(
                rng,
                household_id,
                "spouse",
                max(20, head_age + rng.randint(-6, 6)),
                vault,
                spouse_sex,
            )
        )
    for _ in range(rng.choices((0, 1, 2, 3), weights=(3, 4, 3, 1))[0]):
        people.append(
            _person(
                rng, household_id, "child", max(0, min(head_age - 18, rng.randint(0, 30))), vault
            )
        )
    if head_age < 55 and rng.random() < 0.25:
        people.append(_person(rng, household_id, "parent", rng.randint(62, 90), vault))
    for p in people:
        p["last_name"] = surname
    return people


def _failed_indicators(rng: random.Random) -> list[str]:
    by_dimension = {d: [i.code for i in INDICATORS if i.dimension is d] for d in Dimension}
    count = rng.choices((1, 2, 3, 4), weights=(5, 3, 2, 1))[0]
    chosen: set[str] = set()
    while len(chosen) < count:
        dimension = rng.choices(list(DIMENSION_WEIGHT), weights=list(DIMENSION_WEIGHT.values()))
        chosen.add(rng.choice(by_dimension[dimension[0]]))
    return sorted(chosen)


async def demo_loaded(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        found = (
            await session.exec(
                select(Household.id).where(Household.created_by == DEMO_SUBJECT).limit(1)
            )
        ).first()
    return found is not None


async def load_demo(
    sessionmaker: async_sessionmaker[AsyncSession],
    vault: CitizenIdVault,
    *,
    namespace: str = "",
    households: int = HOUSEHOLDS,
    seed: int = 2565,
) -> int:
    """Load the demo province once; returns the number of households written (0 if present)."""
    if await demo_loaded(sessionmaker):
        return 0
    rng = random.Random(seed)
    async with transaction(sessionmaker) as session:
        areas = (
            await session.exec(
                select(Area).where(col(Area.code).like(f"{PROVINCE}%")).order_by(col(Area.code))
            )
        ).all()
        province = next(a for a in areas if a.level == "province")
        districts = [a for a in areas if a.level == "district"]
        subdistricts = [a for a in areas if a.level == "subdistrict"]

        organizations: list[dict[str, Any]] = []

        def organization(
            kind: str, name: str, area: str, parent: Any = None, ministry: str | None = None
        ) -> Any:
            org_id = uuid7()
            organizations.append(
                {
                    "id": org_id,
                    "kind": kind,
                    "name": name,
                    "area_code": area,
                    "parent_id": parent,
                    "ministry": ministry,
                    "version": 1,
                }
            )
            return org_id

        centre = organization("operation_center", f"ศจพ.จ.{province.name_th}", PROVINCE)
        for name, ministry in AGENCIES:
            organization("agency", name, PROVINCE, centre, ministry)
        district_centres = {
            d.code: organization("operation_center", f"ศจพ.อ.{d.name_th}", d.code, centre)
            for d in districts
        }
        teams: dict[str, list[Any]] = {}
        villages: list[dict[str, Any]] = []
        for s in subdistricts:
            sub_team = organization(
                "subdistrict_team",
                f"ทีมปฏิบัติการตำบล{s.name_th}",
                s.code,
                district_centres[s.code[:4]],
            )
            teams[s.code] = [
                organization("mentor_team", f"ทีมพี่เลี้ยงตำบล{s.name_th} ชุดที่ {n}", s.code, sub_team)
                for n in (1, 2)
            ]
            villages += [
                {
                    "code": f"{s.code}{n:02d}",
                    "level": "village",
                    "name_th": f"หมู่ที่ {n} บ้าน{rng.choice(SURNAMES)}",
                    "name_en": f"Village No. {n}",
                    "parent_code": s.code,
                }
                for n in range(1, rng.randint(5, 12))
            ]
        await session.exec(sa.insert(Area), params=villages)
        await session.exec(sa.insert(Organization), params=organizations)

        village_codes = [v["code"] for v in villages]
        household_rows: list[dict[str, Any]] = []
        person_rows: list[dict[str, Any]] = []
        for n in range(households):
            household_id = uuid7()
            village = rng.choice(village_codes)
            members = _members(rng, household_id, vault)
            person_rows += members
            names = " ".join(f"{p['title']} {p['first_name']} {p['last_name']}" for p in members)
            address = f"{rng.randint(1, 299)} หมู่ {int(village[-2:])}"
            house_code = f"{PROVINCE}{n:09d}"
            household_rows.append(
                {
                    "id": household_id,
                    "house_code": house_code,
                    "area_code": village,
                    "address": address,
                    "survey_year": 2565,
                    "failed_indicators": _failed_indicators(rng),
                    "status": "target",
                    "mentor_team_id": rng.choice(teams[village[:6]]),
                    "search_text": f"{house_code} {address} {names}",
                    "version": 1,
                    "created_by": DEMO_SUBJECT,
                }
            )
        await session.exec(sa.insert(Household), params=household_rows)
        await session.exec(sa.insert(Person), params=person_rows)
        await session.exec(
            sa.insert(StatusChange),
            params=[
                {
                    "id": uuid7(),
                    "household_id": h["id"],
                    "from_status": None,
                    "to_status": "target",
                    "reason": "registered",
                    "changed_by": DEMO_SUBJECT,
                }
                for h in household_rows
            ],
        )

        members_per_household: dict[Any, int] = {}
        for p in person_rows:
            members_per_household[p["household_id"]] = (
                members_per_household.get(p["household_id"], 0) + 1
            )
        events = [
            Event.of(
                OrganizationCreated(
                    organization_id=o["id"],
                    kind=o["kind"],
                    name=o["name"],
                    area_code=o["area_code"],
                    parent_id=o["parent_id"],
                ),
                source=SOURCE,
                subject=o["id"],
                area_code=o["area_code"],
            )
            for o in organizations
        ]
        for h in household_rows:
            events.append(
                Event.of(
                    HouseholdRegistered(
                        household_id=h["id"],
                        area_code=h["area_code"],
                        house_code=h["house_code"],
                        status="target",
                        survey_year=h["survey_year"],
                        failed_indicators=h["failed_indicators"],
                        dimensions=[d.value for d in dimensions_of(h["failed_indicators"])],
                        mentor_team_id=None,
                        member_count=members_per_household[h["id"]],
                    ),
                    source=SOURCE,
                    subject=h["id"],
                    area_code=h["area_code"],
                )
            )
            events.append(
                Event.of(
                    HouseholdAssigned(
                        household_id=h["id"],
                        area_code=h["area_code"],
                        mentor_team_id=h["mentor_team_id"],
                        previous_team_id=None,
                    ),
                    source=SOURCE,
                    subject=h["id"],
                    area_code=h["area_code"],
                )
            )
        await Outbox(session, source=SOURCE, namespace=namespace).add_many(events)
    return households


async def demo_households(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> list[tuple[Any, Any, str, list[str]]]:
    """The demo's households: id, mentor team, area and failed indicators (for the logbook)."""
    async with sessionmaker() as session:
        rows = (
            await session.exec(
                select(
                    Household.id,
                    Household.mentor_team_id,
                    Household.area_code,
                    Household.failed_indicators,
                )
                .where(Household.created_by == DEMO_SUBJECT)
                .order_by(col(Household.id))
            )
        ).all()
    return [(h, t, a, list(f)) for h, t, a, f in rows]


async def count_in_status(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[Any], status: str
) -> int:
    async with sessionmaker() as session:
        found = (
            await session.exec(
                select(Household.id).where(col(Household.id).in_(ids), Household.status == status)
            )
        ).all()
    return len(found)


async def graduate(
    sessionmaker: async_sessionmaker[AsyncSession],
    vault: CitizenIdVault,
    ids: list[Any],
    *,
    namespace: str = "",
) -> int:
    """Confirm graduation, as each district's officer would, of households whose follow-up
    visit found nothing failing; through the registry's own status rule."""
    graduated = 0
    for household_id in ids:
        async with transaction(sessionmaker) as session:
            household = await session.get(Household, household_id)
            if household is None or household.status != "in_progress":
                continue
            district = household.area_code[:4]
            ctx = Context(
                caller=Caller(
                    subject=f"demo-officer:{district}", role=Role.district_officer, area=district
                ),
                repo=RegistryRepository(session),
                outbox=Outbox(session, source=SOURCE, namespace=namespace),
                vault=vault,
            )
            await change_status(
                ctx,
                household_id,
                StatusTransition(
                    status=HouseholdStatus.graduated,
                    reason="ติดตามผลแล้ว ไม่มีตัวชี้วัดที่ยังไม่ผ่าน (follow-up visit: no indicator failing)",
                ),
            )
            graduated += 1
    return graduated
