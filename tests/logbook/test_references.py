"""An intervention names a member of its own household and an agency the registry knows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows, eventually
from tests.logbook.support import count, intervention, organization, wait_known

MEMBERS = [
    {"first_name": "สมชาย", "last_name": "ใจดี", "birth_date": "1980-05-01"},
    {"first_name": "สมหญิง", "last_name": "ใจดี", "birth_date": "2015-02-11"},
]


@dataclass
class Family:
    officer: httpx.AsyncClient
    household: str
    members: list[str]
    stranger: str  # a member of another household
    agency: str
    team: str


async def _persons_known(settings: LogbookSettings, person_ids: list[str]) -> bool:
    rows = await db_rows(
        settings,
        "SELECT count(*) FROM person_ref WHERE id = ANY($1::uuid[])",
        [UUID(p) for p in person_ids],
    )
    return bool(rows[0][0] == len(person_ids))


async def _organization_known(settings: LogbookSettings, organization_id: str) -> bool:
    rows = await db_rows(
        settings, "SELECT 1 FROM organization_ref WHERE id = $1", UUID(organization_id)
    )
    return bool(rows)


@pytest.fixture
async def family(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> AsyncIterator[Family]:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    agency = await organization(
        admin, kind="agency", area="24", ministry="กระทรวงการพัฒนาสังคมและความมั่นคงของมนุษย์"
    )
    registered = await admin.post(
        "/v1/households",
        json={"area_code": "240101", "address": "12 หมู่ 3", "members": MEMBERS},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    members = [m["id"] for m in body["members"]]
    other = await admin.post(
        "/v1/households",
        json={"area_code": "240101", "members": [{"first_name": "มานะ", "last_name": "อดทน"}]},
    )
    assert other.status_code == 201, other.text
    stranger = other.json()["members"][0]["id"]

    await wait_known(logbook_settings, body["id"])
    await eventually(
        lambda: _persons_known(logbook_settings, [*members, stranger]),
        what="the members in person_ref",
    )
    await eventually(lambda: _organization_known(logbook_settings, agency), what="the agency")
    await eventually(lambda: _organization_known(logbook_settings, team), what="the team")
    yield Family(
        logbook_as("district_officer", "2401"), body["id"], members, stranger, agency, team
    )


async def test_an_intervention_for_one_member_of_the_household(family: Family) -> None:
    child = family.members[1]
    response = await family.officer.post(
        "/v1/interventions",
        json=intervention(
            family.household,
            person_id=child,
            dimension="education",
            menu_code="EDU-02",
            agency_id=family.agency,
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()["person_id"] == child
    assert response.json()["agency_id"] == family.agency


@pytest.mark.parametrize(
    ("who", "field"),
    [
        ("stranger", "person_id"),
        ("nobody", "person_id"),
        ("household", "person_id"),
    ],
)
async def test_a_person_outside_the_household_is_refused(
    family: Family, logbook_settings: LogbookSettings, who: str, field: str
) -> None:
    person = {
        "stranger": family.stranger,
        "nobody": "0195f0c4-0000-7000-8000-0000000000aa",
        "household": family.household,
    }[who]
    response = await family.officer.post(
        "/v1/interventions", json=intervention(family.household, person_id=person)
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await count(logbook_settings, "intervention") == 0
    assert await count(logbook_settings, "outbox") == 0


@pytest.mark.parametrize("who", ["team", "nobody", "household"])
async def test_the_agency_must_be_a_registry_agency(
    family: Family, logbook_settings: LogbookSettings, who: str
) -> None:
    agency = {
        "team": family.team,
        "nobody": "0195f0c4-0000-7000-8000-0000000000bb",
        "household": family.household,
    }[who]
    response = await family.officer.post(
        "/v1/interventions", json=intervention(family.household, agency_id=agency)
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["agency_id"]
    assert await count(logbook_settings, "intervention") == 0


async def test_a_correction_is_held_to_the_same_references(family: Family) -> None:
    first = await family.officer.post(
        "/v1/interventions", json=intervention(family.household, person_id=family.members[0])
    )
    assert first.status_code == 201, first.text
    moved = await family.officer.post(
        f"/v1/interventions/{first.json()['id']}/corrections",
        json={"person_id": family.stranger, "agency_id": family.team, "reason": "แก้ผู้รับ"},
    )
    assert moved.status_code == 422, moved.text
    assert {e["field"] for e in moved.json()["errors"]} == {"person_id", "agency_id"}
    fixed = await family.officer.post(
        f"/v1/interventions/{first.json()['id']}/corrections",
        json={"person_id": family.members[1], "agency_id": family.agency, "reason": "แก้ผู้รับ"},
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["person_id"] == family.members[1]
