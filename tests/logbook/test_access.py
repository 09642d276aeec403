"""Who may use the logbook: analysts see no records, closed households take no entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows
from tests.logbook.support import (
    VISIT,
    count,
    household,
    intervention,
    organization,
    set_status,
    wait_known,
)


@dataclass
class Scene:
    admin: httpx.AsyncClient
    mentor: httpx.AsyncClient
    officer: httpx.AsyncClient
    team: str
    household: str
    entry: dict[str, Any]


@pytest.fixture
async def scene(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> AsyncIterator[Scene]:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    mentor = logbook_as("mentor", "240101", UUID(team))
    entry = await mentor.post("/v1/interventions", json=intervention(household_id))
    assert entry.status_code == 201, entry.text
    yield Scene(
        admin,
        mentor,
        logbook_as("district_officer", "2401"),
        team,
        household_id,
        entry.json(),
    )


def _requests(scene: Scene) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every logbook route that touches a household's records."""
    entry = scene.entry["id"]
    return [
        ("GET", f"/v1/households/{scene.household}/visits", None),
        ("POST", f"/v1/households/{scene.household}/visits", VISIT),
        ("GET", f"/v1/households/{scene.household}/logbook", None),
        ("GET", "/v1/interventions", None),
        ("POST", "/v1/interventions", intervention(scene.household)),
        ("GET", f"/v1/interventions/{entry}", None),
        ("POST", f"/v1/interventions/{entry}/status", {"status": "completed"}),
        ("POST", f"/v1/interventions/{entry}/corrections", {"amount_thb": "1", "reason": "x"}),
        ("GET", f"/v1/teams/{scene.team}/worklist", None),
    ]


async def test_an_analyst_reads_the_catalogue_but_no_household_record(
    scene: Scene, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    analyst = logbook_as("analyst", "TH")
    menus = await analyst.get("/v1/menus")
    assert menus.status_code == 200 and len(menus.json()) >= 25
    assert (await analyst.get("/v1/menus", params={"dimension": "health"})).status_code == 200
    for method, path, body in _requests(scene):
        response = await analyst.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await count(logbook_settings, "visit") == 0
    assert await count(logbook_settings, "intervention") == 1


async def test_without_the_gateways_identity_nothing_answers(
    scene: Scene, logbook_app: Any
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=logbook_app), base_url="http://logbook"
    ) as anonymous:
        for method, path, body in [("GET", "/v1/menus", None), *_requests(scene)]:
            response = await anonymous.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.text)


@pytest.mark.parametrize("closed", ["moved", "deceased", "duplicate"])
async def test_a_closed_household_takes_no_new_entries(
    scene: Scene, logbook_settings: LogbookSettings, closed: str
) -> None:
    await set_status(scene.admin, scene.household, closed, f"ครัวเรือน {closed}")
    await wait_known(logbook_settings, scene.household, status=closed)
    before = {
        table: await count(logbook_settings, table)
        for table in ("visit", "intervention", "intervention_status_change", "outbox")
    }
    entry = scene.entry["id"]
    for client in (scene.mentor, scene.officer):
        for path, body in (
            (f"/v1/households/{scene.household}/visits", VISIT),
            ("/v1/interventions", intervention(scene.household)),
            (f"/v1/interventions/{entry}/status", {"status": "in_progress"}),
            (f"/v1/interventions/{entry}/corrections", {"amount_thb": "1.00", "reason": "แก้"}),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 403, (path, response.text)
            assert closed in response.json()["detail"]
    after = {table: await count(logbook_settings, table) for table in before}
    assert after == before
    # What was written stays readable.
    timeline = await scene.officer.get(f"/v1/households/{scene.household}/logbook")
    assert timeline.status_code == 200
    assert any(e["id"] == entry for e in timeline.json())


@pytest.mark.parametrize("still_open", ["graduated", "refused"])
async def test_a_graduated_or_refusing_household_still_takes_entries(
    scene: Scene, logbook_settings: LogbookSettings, still_open: str
) -> None:
    # The fixture's intervention has moved the household to in_progress in the registry.
    await wait_known(logbook_settings, scene.household, status="in_progress")
    await set_status(scene.admin, scene.household, still_open, "ผ่านทุกตัวชี้วัด")
    await wait_known(logbook_settings, scene.household, status=still_open)
    follow_up = await scene.mentor.post(f"/v1/households/{scene.household}/visits", json=VISIT)
    assert follow_up.status_code == 201, follow_up.text


async def test_a_mentor_just_assigned_may_write_before_the_logbook_hears_of_it(
    scene: Scene, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    other = await organization(scene.admin)
    moved = await scene.admin.put(
        f"/v1/households/{scene.household}/mentor-team", json={"team_id": other}
    )
    assert moved.status_code == 200, moved.text
    await wait_known(logbook_settings, scene.household, mentor_team_id=other)
    # Hold the read model back, as if the assignment's event were still on its way.
    await db_rows(
        logbook_settings,
        "UPDATE household_ref SET mentor_team_id = $1 WHERE id = $2",
        UUID(scene.team),
        UUID(scene.household),
    )
    new_mentor = logbook_as("mentor", "240101", UUID(other))
    written = await new_mentor.post("/v1/interventions", json=intervention(scene.household))
    assert written.status_code == 201, written.text  # the registry, asked, says it is theirs
    stranger = logbook_as("mentor", "240101", UUID(await organization(scene.admin)))
    refused = await stranger.post("/v1/interventions", json=intervention(scene.household))
    assert refused.status_code == 403, refused.text
