"""The logbook's read model of households follows the registry, by events or, once, by HTTP."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI

from services.logbook.app import create_app as create_logbook
from services.logbook.events import HANDLERS, NotKnownYet
from services.logbook.settings import LogbookSettings
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import Event, EventData
from shared.events.registry import HouseholdAssigned, HouseholdRegistered
from tests.conftest import ClientFactory, eventually, running
from tests.logbook.support import VISIT, household, intervention, organization, wait_known


async def test_a_household_asked_of_the_registry_comes_with_its_team(
    as_caller: ClientFactory, registry_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    other_team = await organization(admin)
    household_id = await household(admin, team)
    # No consumer: the logbook learns of the household only from the registry's answer.
    settings = logbook_settings.model_copy(update={"consumer_enabled": False})
    async with running(
        create_logbook(settings, registry_transport=httpx.ASGITransport(app=registry_app))
    ) as logbook:
        stranger = as_caller("mentor", "240101", UUID(other_team), app=logbook)
        refused = await stranger.post(f"/v1/households/{household_id}/visits", json=VISIT)
        assert refused.status_code == 403, refused.text
        mentor = as_caller("mentor", "240101", UUID(team), app=logbook)
        visit = await mentor.post(f"/v1/households/{household_id}/visits", json=VISIT)
        assert visit.status_code == 201, visit.text
        assert visit.json()["team_id"] == team
    await wait_known(logbook_settings, household_id, mentor_team_id=team, status="target")


async def test_a_household_that_moves_area_is_followed_and_new_entries_carry_the_new_area(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id, area_code="240101")
    officer = logbook_as("district_officer", "2401")
    before = await officer.post("/v1/interventions", json=intervention(household_id))
    assert before.status_code == 201 and before.json()["area_code"] == "240101"

    # The intervention moves the household to in_progress in the registry: read it after that.
    async def in_progress() -> httpx.Response | None:
        response = await admin.get(f"/v1/households/{household_id}")
        return response if response.json()["status"] == "in_progress" else None

    current = await eventually(in_progress, what="the registry's in_progress")
    moved = await admin.patch(
        f"/v1/households/{household_id}",
        json={"area_code": "240102"},
        headers={"If-Match": current.headers["etag"]},
    )
    assert moved.status_code == 200, moved.text
    await wait_known(logbook_settings, household_id, area_code="240102")

    after = await officer.post("/v1/interventions", json=intervention(household_id))
    assert after.status_code == 201 and after.json()["area_code"] == "240102"
    listed = await officer.get("/v1/interventions", params={"area_code": "240102"})
    assert [i["id"] for i in listed.json()["items"]] == [after.json()["id"]]


async def test_a_reassigned_household_changes_hands_between_mentor_teams(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    old_team = await organization(admin)
    new_team = await organization(admin)
    household_id = await household(admin, old_team)
    await wait_known(logbook_settings, household_id, mentor_team_id=old_team)
    reassigned = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": new_team}
    )
    assert reassigned.status_code == 200, reassigned.text
    await wait_known(logbook_settings, household_id, mentor_team_id=new_team)

    old = logbook_as("mentor", "240101", UUID(old_team))
    new = logbook_as("mentor", "240101", UUID(new_team))
    assert (await old.post(f"/v1/households/{household_id}/visits", json=VISIT)).status_code == 403
    assert (await new.post(f"/v1/households/{household_id}/visits", json=VISIT)).status_code == 201
    assert (await old.get(f"/v1/teams/{old_team}/worklist")).json() == []
    assert [
        i["household_id"] for i in (await new.get(f"/v1/teams/{new_team}/worklist")).json()
    ] == [household_id]


async def test_an_assignment_that_overtakes_its_registration_waits_for_it(
    logbook_settings: LogbookSettings,
) -> None:
    """Two replicas share the stream: an assignment may reach one before the registration
    reaches the other. It is refused (to be tried again), never applied to nothing."""
    household_id, team_id = uuid4(), uuid4()

    def event(data: EventData) -> Event:
        return Event.of(data, source="registry", subject=household_id, area_code="240101")

    assigned = event(
        HouseholdAssigned(
            household_id=household_id,
            area_code="240101",
            mentor_team_id=team_id,
            previous_team_id=None,
        )
    )
    registered = event(
        HouseholdRegistered(
            household_id=household_id,
            area_code="240101",
            house_code=None,
            status="target",
            survey_year=None,
            failed_indicators=[],
            dimensions=[],
            mentor_team_id=None,
            member_count=0,
        )
    )
    engine = create_engine(logbook_settings)
    sessions = create_sessionmaker(engine)
    try:
        with pytest.raises(NotKnownYet):
            async with transaction(sessions) as session:
                await HANDLERS[assigned.type](session, assigned)
        async with transaction(sessions) as session:
            await HANDLERS[registered.type](session, registered)
        async with transaction(sessions) as session:  # tried again, after the registration
            await HANDLERS[assigned.type](session, assigned)
    finally:
        await engine.dispose()
    await wait_known(logbook_settings, str(household_id), mentor_team_id=str(team_id))
