"""Every write of the registry and the logbook, with a valid body and the text fields it has.

A test swaps one field's value for a hostile one, sends it through the gateway, and checks the
answer: 2xx with the text kept as sent, or a 4xx problem and not a row changed.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from services.logbook.settings import LogbookSettings
from shared.auth import Role
from tests.conftest import eventually
from tests.gateway.conftest import Gateway
from tests.hostile.support import Call
from tests.logbook.support import VISIT, intervention
from tests.registry.support import citizen_id, household, person

_villages = itertools.count()
_menus = itertools.count(100)


@dataclass
class World:
    """What the writes refer to: a mentor team, an agency, a household with a member."""

    admin: httpx.AsyncClient
    team: str
    agency: str
    household: str
    person: str
    citizen_id: str


Prepare = Callable[[World], Awaitable[Call]]


@dataclass(frozen=True)
class Write:
    """A write route: how to make a valid call to it, and the text fields of its body."""

    name: str
    prepare: Prepare
    fields: tuple[str, ...]
    # The fields that keep any text up to a length (the others have a form: a code, a date...).
    free_text: dict[str, int] = field(default_factory=dict)
    writes_first: bool = False  # whether `prepare` itself writes (a fresh record to change)


async def _etag(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    # A read of personal data is logged: a write that reads first must say `writes_first`.
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return {"If-Match": response.headers["etag"]}


async def _intervention(world: World) -> str:
    response = await world.admin.post("/v1/interventions", json=intervention(world.household))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _village(world: World) -> Call:
    n = next(_villages)
    code = f"24010{1 + n // 80 % 9}{20 + n % 80:02d}"
    return Call("POST", "/v1/areas", {"code": code, "name_th": "หมู่ที่ 9", "name_en": "Moo 9"})


async def _organization(world: World) -> Call:
    body = {"kind": "agency", "name": "สำนักงาน", "area_code": "240101", "ministry": "กระทรวง"}
    return Call("POST", "/v1/organizations", body)


async def _organization_change(world: World) -> Call:
    path = f"/v1/organizations/{world.agency}"
    body = {"name": "สำนักงานใหม่", "ministry": "กระทรวงใหม่"}
    return Call("PATCH", path, body, await _etag(world.admin, path))


async def _org_member(world: World) -> Call:
    body = {"name": "สมหญิง", "position": "อสม.", "phone": "081-234-5678", "subject": "mentor-x"}
    return Call("POST", f"/v1/organizations/{world.team}/members", body)


async def _household(world: World) -> Call:
    member = person(title="นาย", relation="head", citizen_id=citizen_id(), birth_date="1970-01-01")
    return Call("POST", "/v1/households", household(members=[{**member, "sex": "male"}]))


async def _household_change(world: World) -> Call:
    path = f"/v1/households/{world.household}"
    body = {"area_code": "240101", "address": "1 หมู่ 1", "failed_indicators": ["2560-04"]}
    return Call("PATCH", path, body, await _etag(world.admin, path))


async def _household_status(world: World) -> Call:
    response = await world.admin.post("/v1/households", json=household())
    assert response.status_code == 201, response.text
    path = f"/v1/households/{response.json()['id']}/status"
    return Call("POST", path, {"status": "refused", "reason": "ไม่ประสงค์รับความช่วยเหลือ"})


async def _mentor_team(world: World) -> Call:
    path = f"/v1/households/{world.household}/mentor-team"
    return Call("PUT", path, {"team_id": world.team})


async def _add_member(world: World) -> Call:
    body = person(
        title="นาง",
        relation="spouse",
        citizen_id=citizen_id(),
        sex="female",
        birth_date="1975-02-03",
    )
    return Call("POST", f"/v1/households/{world.household}/members", body)


async def _lookup(world: World) -> Call:
    body = {"citizen_id": world.citizen_id, "reason": "ตรวจสอบสิทธิ"}
    return Call("POST", "/v1/persons/lookup", body)


async def _person_change(world: World) -> Call:
    path = f"/v1/persons/{world.person}"
    body = {"title": "นาย", "first_name": "สมชาย", "last_name": "ใจดี", "relation": "head"}
    return Call("PATCH", path, {**body, "sex": "male"}, await _etag(world.admin, path))


async def _menu(world: World) -> Call:
    body = {
        "code": f"HX-{next(_menus)}",
        "dimension": "income",
        "name_th": "ฝึกอาชีพ",
        "name_en": "Job training",
        "agency_hint": "พัฒนาชุมชน",
    }
    return Call("POST", "/v1/menus", body)


async def _visit(world: World) -> Call:
    body = copy.deepcopy(VISIT)
    body.update(team_id=world.team, note="เยี่ยมบ้าน", next_visit_due="2026-12-01")
    return Call("POST", f"/v1/households/{world.household}/visits", body)


async def _new_intervention(world: World) -> Call:
    body = intervention(
        world.household,
        person_id=world.person,
        agency_id=world.agency,
        description="ฝึกทำขนม",
        status="planned",
        planned_for="2026-12-15",
    )
    return Call("POST", "/v1/interventions", body)


async def _completed_intervention(world: World) -> Call:
    body = intervention(world.household, status="completed", completed_at="2026-11-20T10:00:00Z")
    return Call("POST", "/v1/interventions", body)


async def _intervention_status(world: World) -> Call:
    path = f"/v1/interventions/{await _intervention(world)}/status"
    return Call("POST", path, {"status": "in_progress", "note": "เริ่มแล้ว"})


async def _correction(world: World) -> Call:
    body = {
        "person_id": world.person,
        "dimension": "income",
        "menu_code": "INC-02",
        "agency_id": world.agency,
        "description": "แก้ไข",
        "amount_thb": "100.00",
        "planned_for": "2026-12-20",
        "reason": "จำนวนเงินผิด",
    }
    return Call("POST", f"/v1/interventions/{await _intervention(world)}/corrections", body)


async def _completed_correction(world: World) -> Call:
    body = {"completed_at": "2026-11-21T10:00:00+07:00", "reason": "วันที่ผิด"}
    return Call("POST", f"/v1/interventions/{await _intervention(world)}/corrections", body)


PERSON_FIELDS = ("title", "first_name", "last_name", "sex", "birth_date", "relation", "citizen_id")
PERSON_TEXT = {"title": 50, "first_name": 200, "last_name": 200, "relation": 50}
ANALYSIS = {f"analysis.{k}": 4000 for k in ("attitude", "skills", "resources", "way_out")}
MEMBER = {f"members.0.{k}": n for k, n in PERSON_TEXT.items()}

WRITES: tuple[Write, ...] = (
    Write(
        "add village", _village, ("code", "name_th", "name_en"), {"name_th": 200, "name_en": 200}
    ),
    Write(
        "create organization",
        _organization,
        ("kind", "name", "area_code", "ministry"),
        {"name": 200, "ministry": 200},
    ),
    Write(
        "change organization",
        _organization_change,
        ("name", "ministry"),
        {"name": 200, "ministry": 200},
        True,
    ),
    Write(
        "add organization member",
        _org_member,
        ("name", "position", "phone", "subject"),
        {"name": 200, "position": 200, "subject": 200},
    ),
    Write(
        "register household",
        _household,
        ("area_code", "address", "failed_indicators.0", *(f"members.0.{f}" for f in PERSON_FIELDS)),
        {"address": 500, **MEMBER},
    ),
    Write(
        "change household",
        _household_change,
        ("area_code", "address", "failed_indicators.0"),
        {"address": 500},
        True,
    ),
    Write("household status", _household_status, ("status", "reason"), {"reason": 1000}, True),
    Write("assign mentor team", _mentor_team, ("team_id",)),
    Write("add household member", _add_member, PERSON_FIELDS, PERSON_TEXT),
    Write("look up a person", _lookup, ("citizen_id", "reason"), {"reason": 500}),
    Write("change person", _person_change, PERSON_FIELDS[:-1], PERSON_TEXT, True),
    Write(
        "add menu item",
        _menu,
        ("code", "dimension", "name_th", "name_en", "agency_hint"),
        {"name_th": 500, "name_en": 500, "agency_hint": 500},
    ),
    Write(
        "record visit",
        _visit,
        (
            "visited_at",
            "team_id",
            *ANALYSIS,
            "problems.0.dimension",
            "problems.0.indicator",
            "problems.0.note",
            "note",
            "next_visit_due",
        ),
        {**ANALYSIS, "problems.0.note": 500, "note": 4000},
    ),
    Write(
        "record intervention",
        _new_intervention,
        (
            "household_id",
            "person_id",
            "dimension",
            "menu_code",
            "agency_id",
            "description",
            "amount_thb",
            "status",
            "planned_for",
        ),
        {"description": 4000},
    ),
    Write("record completed intervention", _completed_intervention, ("completed_at",)),
    Write("intervention status", _intervention_status, ("status", "note"), {"note": 500}, True),
    Write(
        "correct intervention",
        _correction,
        (
            "person_id",
            "dimension",
            "menu_code",
            "agency_id",
            "description",
            "amount_thb",
            "planned_for",
            "reason",
        ),
        {"description": 4000, "reason": 500},
        True,
    ),
    Write("correct completion", _completed_correction, ("completed_at",), writes_first=True),
)


def put(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """The body with the field at a dotted path (list items by index) set to value."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = changed
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


def get(body: Any, path: str) -> Any:
    node = body
    for key in path.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


async def build_world(gateway: Gateway, logbook_settings: LogbookSettings) -> World:
    """A mentor team and an agency in Mueang Chachoengsao, and the team's household."""
    admin = gateway.as_(Role.national_admin, "TH")
    team = await admin.post(
        "/v1/organizations",
        json={"kind": "mentor_team", "name": "ทีมพี่เลี้ยง 1", "area_code": "240101"},
    )
    agency = await admin.post(
        "/v1/organizations",
        json={"kind": "agency", "name": "พัฒนาชุมชน", "area_code": "24", "ministry": "มหาดไทย"},
    )
    assert team.status_code == agency.status_code == 201, (team.text, agency.text)
    member_id = citizen_id()
    home = await admin.post(
        "/v1/households", json=household(members=[person(citizen_id=member_id)])
    )
    assert home.status_code == 201, home.text
    household_id = home.json()["id"]
    assigned = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": team.json()["id"]}
    )
    assert assigned.status_code == 200, assigned.text

    async def known() -> bool:
        conn = await asyncpg.connect(logbook_settings.database_url.replace("+asyncpg", ""))
        try:
            row = await conn.fetchrow(
                "SELECT mentor_team_id FROM household_ref WHERE id = $1", UUID(household_id)
            )
            people = await conn.fetchval(
                "SELECT count(*) FROM person_ref WHERE id = $1",
                UUID(home.json()["members"][0]["id"]),
            )
        finally:
            await conn.close()
        return row is not None and str(row[0]) == team.json()["id"] and people == 1

    await eventually(known, what="the logbook knows the team's household and its member")
    return World(
        admin,
        team.json()["id"],
        agency.json()["id"],
        household_id,
        home.json()["members"][0]["id"],
        member_id,
    )


__all__ = ["WRITES", "World", "Write", "build_world", "get", "put"]
