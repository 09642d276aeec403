"""Many households to one mentor team in one request: all or none, each audited and announced."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import assert_problem, counts, create_organization, register

PATH = "/v1/households/mentor-team"


async def assigned_events(settings: RegistrySettings) -> list[dict[str, Any]]:
    rows = await registry_rows(
        settings,
        "SELECT payload FROM outbox WHERE payload->>'type' = 'registry.household.assigned'"
        " ORDER BY seq",
    )
    return [json.loads(row["payload"]) for row in rows]


async def teams_of(admin: httpx.AsyncClient, households: list[dict[str, Any]]) -> list[str | None]:
    return [
        (await admin.get(f"/v1/households/{h['id']}")).json()["mentor_team_id"] for h in households
    ]


async def test_assigns_each_household_as_alone_would_and_again_changes_nothing(
    admin: httpx.AsyncClient, registry_settings: RegistrySettings
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    households = [await register(admin, "240101") for _ in range(3)]
    # One of them already under the team, assigned alone: the bulk request leaves it be.
    alone = await admin.put(
        f"/v1/households/{households[0]['id']}/mentor-team", json={"team_id": team["id"]}
    )
    assert alone.status_code == 200, alone.text
    before = await assigned_events(registry_settings)
    registered_etag = (await admin.get(f"/v1/households/{households[1]['id']}")).headers["ETag"]

    response = await admin.post(
        PATH, json={"team_id": team["id"], "household_ids": [h["id"] for h in households]}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"team_id": team["id"], "households": 3, "changed": 2}
    assert await teams_of(admin, households) == [team["id"]] * 3
    events = (await assigned_events(registry_settings))[len(before) :]
    assert sorted(e["subject"] for e in events) == sorted(h["id"] for h in households[1:])
    # The same event a household assigned alone announces, but for its own household.
    assert {e["data"]["household_id"] for e in events} == {h["id"] for h in households[1:]}
    assert before[0]["data"].keys() == events[0]["data"].keys()
    assert all(e["data"]["mentor_team_id"] == team["id"] for e in events)
    assert all(e["data"]["previous_team_id"] is None for e in events)
    trail = (await admin.get(f"/v1/households/{households[1]['id']}/audit")).json()["items"]
    assert [entry["action"] for entry in trail].count("assigned") == 1
    # Its version moved on as one assigned alone did: an If-Match of before is refused.
    read = [await admin.get(f"/v1/households/{h['id']}") for h in households]
    assert len({r.headers["ETag"] for r in read}) == 1  # each registered, then assigned once
    stale = await admin.put(
        f"/v1/households/{households[1]['id']}/mentor-team",
        json={"team_id": None},
        headers={"If-Match": registered_etag},
    )
    assert stale.status_code == 412, stale.text

    again = await admin.post(
        PATH, json={"team_id": team["id"], "household_ids": [h["id"] for h in households]}
    )
    assert again.json()["changed"] == 0
    assert len(await assigned_events(registry_settings)) == len(before) + 2

    unassigned = await admin.post(
        PATH, json={"team_id": None, "household_ids": [households[2]["id"]]}
    )
    assert unassigned.json() == {"team_id": None, "households": 1, "changed": 1}
    assert await teams_of(admin, households) == [team["id"], team["id"], None]


async def test_all_or_none_whatever_is_wrong(
    as_caller: ClientFactory, admin: httpx.AsyncClient, registry_settings: RegistrySettings
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    elsewhere_team = await create_organization(admin, "mentor_team", "240102")
    mine = [await register(admin, "240101") for _ in range(2)]
    other_district = await register(admin, "240201")
    other_subdistrict = await register(admin, "240102")
    officer = as_caller("district_officer", "2401")
    ids = [h["id"] for h in mine]
    before = await counts(registry_settings)

    unknown = await officer.post(
        PATH, json={"team_id": team["id"], "household_ids": [*ids, str(uuid4())]}
    )
    assert_problem(unknown, 404, "not-found")
    # Out of the caller's area: the same answer as a household that does not exist.
    outside = await officer.post(
        PATH, json={"team_id": team["id"], "household_ids": [*ids, other_district["id"]]}
    )
    assert_problem(outside, 404, "not-found")
    assert outside.json()["title"] == unknown.json()["title"]
    wrong_team = await officer.post(
        PATH, json={"team_id": elsewhere_team["id"], "household_ids": ids}
    )
    assert_problem(wrong_team, 422)
    # The first household is the team's, the second is not: the first does not move either.
    mixed = await officer.post(
        PATH, json={"team_id": team["id"], "household_ids": [*ids, other_subdistrict["id"]]}
    )
    assert_problem(mixed, 422)
    no_team = await officer.post(PATH, json={"team_id": str(uuid4()), "household_ids": ids})
    assert_problem(no_team, 422)
    twice = await officer.post(
        PATH, json={"team_id": team["id"], "household_ids": [ids[0], ids[0]]}
    )
    assert_problem(twice, 422)
    too_many = await officer.post(
        PATH, json={"team_id": team["id"], "household_ids": [str(uuid4()) for _ in range(1001)]}
    )
    assert_problem(too_many, 422)
    empty = await officer.post(PATH, json={"team_id": team["id"], "household_ids": []})
    assert_problem(empty, 422)
    mentor = as_caller("mentor", "240101", team_id=team["id"])
    refused = await mentor.post(PATH, json={"team_id": team["id"], "household_ids": ids})
    assert refused.status_code == 403, refused.text

    assert await counts(registry_settings) == before
    assert await teams_of(admin, [*mine, other_subdistrict]) == [None, None, None]
