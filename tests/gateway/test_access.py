"""Every role against every route family, through the gateway with bearer tokens only.

The gateway authenticates; the services decide. This table is what a caller of each role sees:
a household outside the caller's scope answers 404 as if it did not exist, an analyst gets
403 on personal data and 200 on aggregates, and nobody gets anything without a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from shared.auth import Role
from tests.conftest import eventually
from tests.gateway.conftest import Gateway
from tests.logbook.support import VISIT, intervention
from tests.registry.imports_support import CSV, csv_text, row
from tests.registry.support import citizen_id, household


@dataclass
class World:
    """What the table's requests refer to: a mentor team, its household, member, intervention."""

    team: str
    household: str
    citizen_id: str
    intervention: str


@dataclass(frozen=True)
class Request:
    method: str
    path: Callable[[World], str]
    body: Callable[[World], Any] | None = None
    headers: dict[str, str] | None = None


REQUESTS: dict[str, Request] = {
    "areas": Request("GET", lambda w: "/v1/areas/24"),
    "indicators": Request("GET", lambda w: "/v1/indicators"),
    "organizations": Request("GET", lambda w: f"/v1/organizations/{w.team}"),
    "create organization": Request(
        "POST",
        lambda w: "/v1/organizations",
        lambda w: {"kind": "mentor_team", "name": "ทีมพี่เลี้ยง 2", "area_code": "240101"},
    ),
    "members": Request("GET", lambda w: f"/v1/organizations/{w.team}/members"),
    "household": Request("GET", lambda w: f"/v1/households/{w.household}"),
    "register household": Request("POST", lambda w: "/v1/households", lambda w: household()),
    "persons lookup": Request(
        "POST",
        lambda w: "/v1/persons/lookup",
        lambda w: {"citizen_id": w.citizen_id, "reason": "ตรวจสอบสิทธิ"},
    ),
    "imports": Request(
        "POST", lambda w: "/v1/imports/households", lambda w: csv_text([row()]), CSV
    ),
    "menus": Request("GET", lambda w: "/v1/menus"),
    "visits": Request("GET", lambda w: f"/v1/households/{w.household}/visits"),
    "record visit": Request(
        "POST", lambda w: f"/v1/households/{w.household}/visits", lambda w: VISIT
    ),
    "interventions": Request("GET", lambda w: f"/v1/interventions/{w.intervention}"),
    "worklist": Request("GET", lambda w: f"/v1/teams/{w.team}/worklist"),
    "logbook timeline": Request("GET", lambda w: f"/v1/households/{w.household}/logbook"),
    "progress": Request("GET", lambda w: "/v1/progress/2401"),
}

# Who calls: role and area scope; the mentor belongs to the world's team. "other district"
# is a district officer of Bang Khla (2402), beside the household's district.
CALLERS = {
    "national_admin": (Role.national_admin, "TH"),
    "province_officer": (Role.province_officer, "24"),
    "district_officer": (Role.district_officer, "2401"),
    "subdistrict_team": (Role.subdistrict_team, "240101"),
    "mentor": (Role.mentor, "240101"),
    "analyst": (Role.analyst, "24"),
    "system": (Role.system, "TH"),
    "other district": (Role.district_officer, "2402"),
}

# fmt: off
#                        admin prov  dist  subd  ment  anal  sys   other
EXPECTED: dict[str, tuple[int, ...]] = {
    "areas":               (200,  200,  200,  200,  200,  200,  200,  200),
    "indicators":          (200,  200,  200,  200,  200,  200,  200,  200),
    "organizations":       (200,  200,  200,  200,  200,  200,  200,  404),
    "create organization": (201,  201,  201,  201,  403,  403,  201,  403),
    "members":             (200,  200,  200,  200,  200,  403,  200,  404),
    "household":           (200,  200,  200,  200,  200,  403,  200,  404),
    "register household":  (201,  201,  201,  201,  403,  403,  201,  403),
    "persons lookup":      (200,  200,  200,  200,  200,  403,  200,  404),
    "imports":             (202,  202,  202,  202,  403,  403,  202,  202),
    "menus":               (200,  200,  200,  200,  200,  200,  200,  200),
    "visits":              (200,  200,  200,  200,  200,  403,  200,  404),
    "record visit":        (201,  201,  201,  201,  201,  403,  201,  404),
    "interventions":       (200,  200,  200,  200,  200,  403,  200,  404),
    "worklist":            (200,  200,  200,  200,  200,  403,  200,  200),
    "logbook timeline":    (200,  200,  200,  200,  200,  403,  200,  404),
    "progress":            (200,  200,  200,  404,  404,  200,  200,  404),
}
# fmt: on


async def build_world(gateway: Gateway) -> World:
    admin = gateway.as_(Role.national_admin, "TH")
    team = await admin.post(
        "/v1/organizations",
        json={"kind": "mentor_team", "name": "ทีมพี่เลี้ยง 1", "area_code": "240101"},
    )
    assert team.status_code == 201, team.text
    member_id = citizen_id()
    home = await admin.post(
        "/v1/households",
        json=household(
            members=[{"first_name": "สมศรี", "last_name": "ดีใจ", "citizen_id": member_id}]
        ),
    )
    assert home.status_code == 201, home.text
    team_id, household_id = team.json()["id"], home.json()["id"]
    assigned = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": team_id}
    )
    assert assigned.status_code == 200, assigned.text
    mentor = gateway.as_(Role.mentor, "240101", team_id)

    async def planned() -> httpx.Response | None:
        # The logbook learns of the assignment from the registry's events.
        answer = await mentor.post("/v1/interventions", json=intervention(household_id))
        return answer if answer.status_code == 201 else None

    given = await eventually(planned, what="the mentor may write for its team's household")
    return World(team_id, household_id, member_id, given.json()["id"])


async def test_every_role_against_every_route_family(gateway: Gateway) -> None:
    world = await build_world(gateway)
    anonymous = gateway.client()
    seen: dict[str, tuple[int, ...]] = {}
    for family, request in REQUESTS.items():
        statuses = []
        for role, area in CALLERS.values():
            team = world.team if role is Role.mentor else None
            statuses.append(await _status(gateway.as_(role, area, team), request, world))
        seen[family] = tuple(statuses)
        assert await _status(anonymous, request, world) == 401, family
    wrong = {f: {"expected": EXPECTED[f], "seen": s} for f, s in seen.items() if s != EXPECTED[f]}
    assert not wrong, wrong


async def _status(client: httpx.AsyncClient, request: Request, world: World) -> int:
    body = request.body(world) if request.body else None
    response = await client.request(
        request.method,
        request.path(world),
        json=body if not isinstance(body, str) else None,
        content=body if isinstance(body, str) else None,
        headers=request.headers,
    )
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.status_code
