"""Tokens of one area reaching for another area's records, through the gateway.

District 2401 (Mueang Chachoengsao) holds records marked `ลับเอ` in every text field; callers of
district 2402 (Bang Khla) beside it, and of another province, ask for them by id, by filter, by
search, and try to change them. The answer must be the one a record that does not exist gets
(a 404 for one, nothing in a list), no field of 2401's records may appear in any answer, and
nothing may change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx

from services.logbook.settings import LogbookSettings
from shared.auth import Role
from shared.thai import format_citizen_id
from tests.conftest import eventually
from tests.gateway.conftest import Gateway
from tests.hostile.support import Call, Ledger, assert_no_server_error, assert_problem_4xx, diff
from tests.logbook.support import VISIT
from tests.registry.imports_support import CSV, csv_bytes, finished, row
from tests.registry.support import citizen_id, household, person

MARK = "ลับเอ"  # in every text field of district 2401's records, and nowhere else
PHONE = "081-555-0199"
HOUSE_CODE = "24010155501"


@dataclass
class Records:
    """One district's records, by kind."""

    team: str
    agency: str
    member: str
    household: str
    person: str
    citizen_id: str
    visit: str
    intervention: str
    imported: str  # an import job
    imported_household: str

    def ids(self) -> set[str]:
        return {v for k, v in vars(self).items() if k != "citizen_id"}


async def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def _district(
    gateway: Gateway, logbook_settings: LogbookSettings, subdistrict: str, mark: str
) -> Records:
    """A team, an agency, a household with a member, a visit, an intervention and an import."""
    admin = gateway.as_(Role.national_admin, "TH")
    district = subdistrict[:4]
    team = await _ok(
        await admin.post(
            "/v1/organizations",
            json={"kind": "mentor_team", "name": f"{mark}ทีม", "area_code": subdistrict},
        )
    )
    agency = await _ok(
        await admin.post(
            "/v1/organizations",
            json={
                "kind": "agency",
                "name": f"{mark}หน่วยงาน",
                "area_code": district,
                "ministry": f"{mark}กระทรวง",
            },
        )
    )
    member = await _ok(
        await admin.post(
            f"/v1/organizations/{team['id']}/members",
            json={
                "name": f"{mark}อาสา",
                "position": f"{mark}ตำแหน่ง",
                "phone": PHONE if mark == MARK else "089-000-0000",
                "subject": f"{mark}-mentor",
            },
        )
    )
    digits = citizen_id()
    home = await _ok(
        await admin.post(
            "/v1/households",
            json=household(
                subdistrict,
                address=f"{mark} 12 หมู่ 3",
                house_code=HOUSE_CODE if mark == MARK else None,
                members=[
                    person(
                        f"{mark}สมชาย",
                        f"{mark}ใจดี",
                        title=f"{mark}นาย",
                        relation=f"{mark}หัวหน้า",
                        citizen_id=digits,
                    )
                ],
            ),
        )
    )
    await _ok(
        await admin.put(f"/v1/households/{home['id']}/mentor-team", json={"team_id": team["id"]}),
        200,
    )
    mentor = gateway.as_(Role.mentor, subdistrict, team["id"])

    async def visited() -> httpx.Response | None:
        # The logbook learns of the assignment from the registry's events.
        answer = await mentor.post(
            f"/v1/households/{home['id']}/visits",
            json={**VISIT, "note": f"{mark}บันทึก", "analysis": {"attitude": f"{mark}ทัศนคติ"}},
        )
        return answer if answer.status_code == 201 else None

    visit = (await eventually(visited, what="the mentor may write for its household")).json()
    given = await _ok(
        await mentor.post(
            "/v1/interventions",
            json={
                "household_id": home["id"],
                "person_id": home["members"][0]["id"],
                "agency_id": agency["id"],
                "dimension": "income",
                "menu_code": "INC-02",
                "description": f"{mark}ฝึกอาชีพ",
                "amount_thb": "555.55",
            },
        )
    )
    await _ok(
        await mentor.post(
            f"/v1/interventions/{given['id']}/status",
            json={"status": "in_progress", "note": f"{mark}เริ่ม"},
        ),
        200,
    )
    officer = gateway.as_(Role.district_officer, district)
    file = csv_bytes(
        [
            row(area_code=subdistrict, first_name=f"{mark}นำเข้า", household_key=f"{mark}1"),
            row(area_code=subdistrict, first_name=f"{mark}ผิด", sex=f"{mark}เพศ"),
        ]
    )
    started = await officer.post(
        "/v1/imports/households", params={"filename": f"{mark}.csv"}, content=file, headers=CSV
    )
    job = await finished(officer, (await _ok(started, 202))["id"])
    assert job["state"] == "done" and job["households_imported"] == 1, job
    listed = await officer.get("/v1/households", params={"q": f"{mark}นำเข้า"})
    (imported,) = [h for h in listed.json()["items"] if h["id"] != home["id"]]
    return Records(
        team=team["id"],
        agency=agency["id"],
        member=member["id"],
        household=home["id"],
        person=home["members"][0]["id"],
        citizen_id=digits,
        visit=visit["id"],
        intervention=given["id"],
        imported=job["id"],
        imported_household=imported["id"],
    )


# Requests for one record, by the record's id: `{}` in the path and the body is the id.
@dataclass(frozen=True)
class Reach:
    method: str
    path: str
    target: Callable[[Records], str]
    body: Any = None
    headers: dict[str, str] | None = None


def _household(r: Records) -> str:
    return r.household


def _intervention(r: Records) -> str:
    return r.intervention


def _team(r: Records) -> str:
    return r.team


REACHES: tuple[Reach, ...] = (
    Reach("GET", "/v1/households/{}", _household),
    Reach("PATCH", "/v1/households/{}", _household, {"address": "ย้าย"}, {"If-Match": '"2"'}),
    Reach("GET", "/v1/households/{}/members", _household),
    Reach("POST", "/v1/households/{}/members", _household, person("แทรก", "เข้ามา")),
    Reach("GET", "/v1/households/{}/status-history", _household),
    Reach("POST", "/v1/households/{}/status", _household, {"status": "moved", "reason": "x"}),
    Reach("GET", "/v1/households/{}/audit", _household),
    Reach("PUT", "/v1/households/{}/mentor-team", _household, {"team_id": "{B_TEAM}"}),
    Reach("GET", "/v1/households/{}", lambda r: r.imported_household),
    Reach("GET", "/v1/persons/{}", lambda r: r.person),
    Reach("PATCH", "/v1/persons/{}", lambda r: r.person, {"first_name": "ก"}, {"If-Match": '"1"'}),
    Reach(
        "POST", "/v1/persons/lookup", lambda r: r.citizen_id, {"citizen_id": "{}", "reason": "ดู"}
    ),
    Reach("GET", "/v1/organizations/{}", _team),
    Reach("PATCH", "/v1/organizations/{}", _team, {"name": "ยึด"}, {"If-Match": '"1"'}),
    Reach("GET", "/v1/organizations/{}/members", _team),
    Reach("POST", "/v1/organizations/{}/members", _team, {"name": "แฝง"}),
    Reach("DELETE", "/v1/organizations/{}/members/{MEMBER}", _team),
    Reach("GET", "/v1/organizations/{}", lambda r: r.agency),
    Reach("GET", "/v1/imports/{}", lambda r: r.imported),
    Reach("GET", "/v1/households/{}/visits", _household),
    Reach("POST", "/v1/households/{}/visits", _household, VISIT),
    Reach("GET", "/v1/households/{}/logbook", _household),
    Reach("GET", "/v1/interventions/{}", _intervention),
    Reach("POST", "/v1/interventions/{}/status", _intervention, {"status": "cancelled"}),
    Reach(
        "POST",
        "/v1/interventions/{}/corrections",
        _intervention,
        {"amount_thb": "1.00", "reason": "แก้"},
    ),
    Reach(
        "POST",
        "/v1/interventions",
        _household,
        {"household_id": "{}", "dimension": "income", "menu_code": "INC-02"},
    ),
    Reach("GET", "/v1/interventions", _household, headers=None, body={"household_id": "{}"}),
    Reach("GET", "/v1/households", _team, body={"team_id": "{}"}),
    Reach("GET", "/v1/teams/{}/worklist", _team),
)

# Callers of the district beside 2401, of another province, and a mentor whose token names
# 2401's team but an area in 2402 (the area decides, not the team).
CALLERS: dict[str, tuple[Role, str, Callable[[Records, Records], str | None]]] = {
    "district 2402": (Role.district_officer, "2402", lambda a, b: None),
    "subdistrict team 240201": (Role.subdistrict_team, "240201", lambda a, b: None),
    "mentor of 240201's team": (Role.mentor, "240201", lambda a, b: b.team),
    "mentor in 240201 naming 2401's team": (Role.mentor, "240201", lambda a, b: a.team),
    "province 10": (Role.province_officer, "10", lambda a, b: None),
    "system client of 2402": (Role.system, "2402", lambda a, b: None),
    "analyst of 2402": (Role.analyst, "2402", lambda a, b: None),
}


def _fill(value: Any, target: str, b: Records, member: str) -> Any:
    text = json.dumps(value).replace("{B_TEAM}", b.team).replace("{MEMBER}", member)
    return json.loads(text.replace("{}", target))


def _call(reach: Reach, target: str, b: Records, member: str) -> Call:
    path = reach.path.replace("{MEMBER}", member).replace("{}", target)
    body = _fill(reach.body, target, b, member) if reach.body is not None else None
    if reach.method == "GET":
        return Call("GET", path, params=body, headers=dict(reach.headers or {}))
    return Call(reach.method, path, body=body, headers=dict(reach.headers or {}))


def _missing_like(target: str) -> str:
    """Something of the same form that does not exist: another UUID, another citizen ID."""
    return citizen_id() if target.isdigit() else str(uuid4())


def _normal(response: httpx.Response, ids: dict[str, str]) -> Any:
    """The answer with the ids the request named replaced, and the request ID dropped."""
    text = response.text
    for value, name in ids.items():
        text = text.replace(value, name)
    if not response.headers.get("content-type", "").startswith(
        ("application/json", "application/problem")
    ):
        return (response.status_code, text)
    body = json.loads(text)
    return (response.status_code, body)


def leaks(response: httpx.Response, a: Records, asked: str) -> list[str]:
    """What of 2401's records an answer shows (beyond the id the request itself named)."""
    text = response.text
    if "json" in response.headers.get("content-type", ""):
        text = json.dumps(response.json(), ensure_ascii=False)
    secrets = [MARK, PHONE, HOUSE_CODE, a.citizen_id, format_citizen_id(a.citizen_id)]
    secrets += [i for i in a.ids() if i not in asked]
    return [s for s in secrets if s in text]


async def test_another_areas_records_answer_as_if_they_did_not_exist(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    a = await _district(gateway, logbook_settings, "240101", MARK)
    b = await _district(gateway, logbook_settings, "240201", "บี")
    wrong: list[Any] = []
    for who, (role, area, team) in CALLERS.items():
        client = gateway.as_(role, area, team(a, b))
        before = await ledger.settled()
        for reach in REACHES:
            target = reach.target(a)
            missing = _missing_like(target)
            call_a = _call(reach, target, b, a.member)
            call_m = _call(reach, missing, b, str(uuid4()))
            asked = call_a.path + json.dumps(call_a.body) + json.dumps(call_a.params)
            what = (who, reach.method, reach.path)
            answers = []
            for call in (call_a, call_m):
                answer = await client.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
                assert_no_server_error(answer, what)
                if answer.status_code >= 400:
                    assert_problem_4xx(answer, what)
                answers.append(answer)
            for_a, for_missing = answers
            if shown := leaks(for_a, a, asked):
                wrong.append((*what, "shows", shown, for_a.text[:300]))
            if target == team(a, b):
                continue  # the caller's own team (by its token): no record like it is missing
            member = call_a.path.rsplit("/", 1)[-1] if "{MEMBER}" in reach.path else ""
            seen_a = _normal(for_a, {target: "ID", member: "MEMBER"} if member else {target: "ID"})
            seen_m = _normal(
                for_missing,
                {missing: "ID", call_m.path.rsplit("/", 1)[-1]: "MEMBER"}
                if member
                else {missing: "ID"},
            )
            if seen_a != seen_m:
                wrong.append((*what, "answers", seen_a, "where nothing is", seen_m))
        # Every request above was refused, or a read of nothing: not a row changed.
        after = await ledger.now()
        assert after == before, (who, "changed", diff(before, after))
    assert not wrong, "\n".join(map(str, wrong))


LISTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/v1/households", {}),
    ("/v1/households", {"area_code": "2401"}),
    ("/v1/households", {"area_code": "240101"}),
    ("/v1/households", {"area_code": "24"}),
    ("/v1/households", {"q": f"{MARK}สมชาย"}),
    ("/v1/households", {"q": f"{MARK} 12 หมู่ 3"}),
    ("/v1/households", {"status": "in_progress"}),
    ("/v1/households", {"dimension": "health"}),
    ("/v1/organizations", {}),
    ("/v1/organizations", {"area_code": "2401"}),
    ("/v1/organizations", {"kind": "mentor_team"}),
    ("/v1/organizations", {"kind": "agency", "area_code": "24"}),
    ("/v1/interventions", {}),
    ("/v1/interventions", {"area_code": "2401"}),
    ("/v1/interventions", {"area_code": "24", "include_superseded": "true"}),
    ("/v1/interventions", {"menu_code": "INC-02"}),
)
# An area's progress, asked for 2401 and for a district that does not exist.
PROGRESS = (
    "/v1/progress/{}",
    "/v1/progress/{}/children",
    "/v1/progress/{}/children?format=csv",
    "/v1/progress/{}/series?from=2026-01&to=2026-12",
    "/v1/progress/{}/chart.svg",
)
NO_DISTRICT = "2499"


def _on_the_line(path: str, item_area: str, scope: str) -> bool:
    """Inside the caller's scope; for organizations also above it (the centres and agencies
    that serve the caller's area are reference data it needs)."""
    if item_area.startswith(scope) or scope == "TH":
        return True
    return path == "/v1/organizations" and (item_area == "TH" or scope.startswith(item_area))


async def test_another_areas_records_are_in_no_list_search_or_count(
    gateway: Gateway, logbook_settings: LogbookSettings
) -> None:
    a = await _district(gateway, logbook_settings, "240101", MARK)
    b = await _district(gateway, logbook_settings, "240201", "บี")
    wrong: list[Any] = []
    for who, (role, area, team) in CALLERS.items():
        client = gateway.as_(role, area, team(a, b))
        for path, params in LISTS:
            # Every page, two items at a time: a leak on a later page counts too.
            cursor: str | None = None
            while True:
                page = await client.get(
                    path, params={**params, "limit": "2"} | ({"cursor": cursor} if cursor else {})
                )
                assert_no_server_error(page, (who, path, params))
                if shown := leaks(page, a, ""):
                    wrong.append((who, path, params, "shows", shown))
                if page.status_code >= 400:
                    assert_problem_4xx(page, (who, path, params))
                    break
                for item in page.json()["items"]:
                    if not _on_the_line(path, item.get("area_code", area), area):
                        wrong.append((who, path, params, "lists", item))
                cursor = page.json()["next_cursor"]
                if not cursor:
                    break
        for path in PROGRESS:
            for_a = await client.get(path.format("2401"))
            for_none = await client.get(path.format(NO_DISTRICT))
            assert_no_server_error(for_a, (who, path))
            if shown := leaks(for_a, a, ""):
                wrong.append((who, path, "shows", shown))
            if _normal(for_a, {"2401": "AREA"}) != _normal(for_none, {NO_DISTRICT: "AREA"}):
                wrong.append((who, path, for_a.status_code, for_a.text[:200], for_none.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))
    await _counts_apart(gateway)


async def _counts_apart(gateway: Gateway) -> None:
    """2402's progress counts 2402's two households, as its own callers and the country see it."""
    national = gateway.as_(Role.national_admin, "TH")
    own = [gateway.as_(role, "2402") for role in (Role.district_officer, Role.analyst, Role.system)]

    async def counted() -> bool:
        # Two households a district (one registered, one imported); one intervention each.
        whole = (await national.get("/v1/progress/24")).json()
        if whole.get("target_households") != 4 or sum(whole["interventions"].values()) != 2:
            return False
        views = [(await c.get("/v1/progress/2402")).json() for c in (national, *own)]
        first = views[0]
        assert first["target_households"] == 2, first
        return sum(first["interventions"].values()) == 1 and all(v == first for v in views)

    await eventually(counted, within=30, what="2402's progress counts only 2402")
