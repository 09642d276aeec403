"""The logbook's read model of households follows the registry, by events or, once, by HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.app import create_app as create_logbook
from services.logbook.domain import visits
from services.logbook.domain.context import Context
from services.logbook.domain.households import known_household
from services.logbook.events import HANDLERS, NotKnownYet, load_batch, write_batch
from services.logbook.registry_client import SERVICE_CALLER, RegistryClient
from services.logbook.repository import LogbookRepository
from services.logbook.schemas import VisitCreate
from services.logbook.settings import LogbookSettings
from shared.auth import Caller, Role
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import Event, EventData
from shared.events.registry import (
    HouseholdAssigned,
    HouseholdRegistered,
    HouseholdStatusChanged,
    HouseholdUpdated,
    PersonAdded,
)
from shared.outbox import Outbox
from tests.conftest import ClientFactory, db_rows, eventually, running
from tests.logbook.support import VISIT, household, intervention, organization, wait_known


def _registered(
    household_id: UUID, status: str = "target", members: int = 0
) -> HouseholdRegistered:
    return HouseholdRegistered(
        household_id=household_id,
        area_code="240101",
        house_code=None,
        status=status,
        survey_year=None,
        failed_indicators=[],
        dimensions=[],
        mentor_team_id=None,
        member_count=members,
    )


async def _apply(sessions: async_sessionmaker[AsyncSession], *events: Event) -> None:
    """Apply events as the consumer applies a batch: its hooks around the handlers."""
    async with transaction(sessions) as session:
        await load_batch(session, list(events))
        for event in events:
            await HANDLERS[event.type](session, event)
        await write_batch(session)


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


async def test_a_household_that_moves_area_is_followed_and_its_entries_go_with_it(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id, area_code="240101")
    officer = logbook_as("district_officer", "2401")
    before = await officer.post("/v1/interventions", json=intervention(household_id))
    assert before.status_code == 201 and before.json()["area_code"] == "240101"
    visit = await officer.post(f"/v1/households/{household_id}/visits", json=VISIT)
    assert visit.status_code == 201, visit.text

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
    assert [i["id"] for i in listed.json()["items"]] == [before.json()["id"], after.json()["id"]]
    assert (await officer.get("/v1/interventions", params={"area_code": "240101"})).json()[
        "items"
    ] == []

    # The household's logbook is the new sub-district's to see and carry on, no longer the old
    # one's.
    entry = f"/v1/interventions/{before.json()['id']}"
    old_team = logbook_as("subdistrict_team", "240101")
    assert (await old_team.get(entry)).status_code == 404
    new_team = logbook_as("subdistrict_team", "240102")
    assert (await new_team.get(entry)).json()["area_code"] == "240102"
    done = await new_team.post(f"{entry}/status", json={"status": "in_progress"})
    assert done.status_code == 200, done.text
    rows = await db_rows(
        logbook_settings,
        "SELECT DISTINCT area_code FROM visit WHERE household_id = $1",
        UUID(household_id),
    )
    assert [r["area_code"] for r in rows] == ["240102"]


async def test_a_move_applied_while_a_write_is_open_takes_the_write_s_entry_along(
    as_caller: ClientFactory, logbook_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    """A visit written, not yet committed, when the household's move is applied: the move
    waits for it (the write holds the household), then takes its entry to the new area."""
    household_id = UUID(await household(as_caller("national_admin", "TH")))
    await wait_known(logbook_settings, str(household_id), area_code="240101")
    move = Event.of(
        HouseholdUpdated(
            household_id=household_id,
            area_code="240102",
            previous_area_code="240101",
            changed=["area_code"],
            failed_indicators=[],
            dimensions=[],
        ),
        source="registry",
        subject=household_id,
        area_code="240102",
    )
    engine = create_engine(logbook_settings)
    sessions = create_sessionmaker(engine)
    registry = RegistryClient(
        "http://registry",
        logbook_settings.internal_key.get_secret_value(),
        transport=httpx.MockTransport(lambda request: httpx.Response(404)),
    )

    try:
        async with transaction(sessions) as session:
            ctx = Context(
                caller=Caller(subject="officer", role=Role.district_officer, area="2401"),
                repo=LogbookRepository(session),
                outbox=Outbox(session, source="test"),
                registry=registry,
                settings=logbook_settings,
            )
            await visits.record_visit(ctx, household_id, VisitCreate.model_validate(VISIT))
            moving = asyncio.create_task(_apply(sessions, move))
            await asyncio.wait({moving}, timeout=0.5)
            assert not moving.done(), "the move did not wait for the open write"
        await moving
    finally:
        await registry.aclose()
        await engine.dispose()
    rows = await db_rows(
        logbook_settings, "SELECT area_code FROM visit WHERE household_id = $1", household_id
    )
    assert [r["area_code"] for r in rows] == ["240102"]


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
    registered = event(_registered(household_id))
    engine = create_engine(logbook_settings)
    sessions = create_sessionmaker(engine)

    try:
        with pytest.raises(NotKnownYet):
            await _apply(sessions, assigned)
        await _apply(sessions, registered)
        await _apply(sessions, assigned)  # tried again, after the registration
    finally:
        await engine.dispose()
    await wait_known(logbook_settings, str(household_id), mentor_team_id=str(team_id))


async def test_a_change_delivered_after_a_newer_one_leaves_the_newer_as_it_is(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    """Replicas apply batches side by side, and a batch met while the database was away comes
    again later: each of area, team and status keeps the newest change the registry made."""
    household_id, old_team, new_team = uuid4(), uuid4(), uuid4()
    start = datetime.now(UTC) - timedelta(hours=1)

    def at(minutes: int, data: EventData) -> Event:
        event = Event.of(data, source="registry", subject=household_id, area_code="240101")
        return event.model_copy(update={"time": start + timedelta(minutes=minutes)})

    def assigned(team: UUID) -> HouseholdAssigned:
        return HouseholdAssigned(
            household_id=household_id,
            area_code="240101",
            mentor_team_id=team,
            previous_team_id=None,
        )

    def moved(area: str) -> HouseholdUpdated:
        return HouseholdUpdated(
            household_id=household_id,
            area_code=area,
            previous_area_code="240101",
            changed=["area_code"],
            failed_indicators=[],
            dimensions=[],
        )

    def status(to: str) -> HouseholdStatusChanged:
        return HouseholdStatusChanged(
            household_id=household_id,
            area_code="240101",
            from_status="target",
            to_status=to,
            reason=None,
            changed_by="someone",
        )

    registered = _registered(household_id)
    engine = create_engine(logbook_settings)
    sessions = create_sessionmaker(engine)

    async def held() -> tuple[str, str, str]:
        rows = await db_rows(
            logbook_settings,
            "SELECT mentor_team_id::text AS team, area_code, status FROM household_ref"
            " WHERE id = $1",
            household_id,
        )
        return rows[0]["team"], rows[0]["area_code"], rows[0]["status"]

    try:
        await _apply(sessions, at(0, registered))
        # Newer first, then the older ones, in another batch ...
        await _apply(
            sessions, at(3, assigned(new_team)), at(4, moved("240102")), at(5, status("moved"))
        )
        await _apply(
            sessions, at(1, assigned(old_team)), at(2, moved("240103")), at(2, status("refused"))
        )
        assert await held() == (str(new_team), "240102", "moved")
        # ... and in the same batch.
        await _apply(
            sessions, at(2, assigned(old_team)), at(3, moved("240103")), at(4, status("target"))
        )
        assert await held() == (str(new_team), "240102", "moved")
        # A change newer than all of them still lands.
        await _apply(sessions, at(9, assigned(old_team)))
        assert await held() == (str(old_team), "240102", "moved")
    finally:
        await engine.dispose()


async def test_one_batch_applies_its_events_in_order_and_a_second_delivery_changes_nothing(
    logbook_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    """A batch reads its households once and writes them once: what each event did must still
    show, in event order, whichever household it came for."""
    first, known, stranger = uuid4(), uuid4(), uuid4()
    team, other_team = uuid4(), uuid4()

    def event(data: EventData, household_id: UUID) -> Event:
        return Event.of(data, source="registry", subject=household_id, area_code="240101")

    def registered(household_id: UUID, status: str = "target") -> Event:
        return event(_registered(household_id, status), household_id)

    def assigned(household_id: UUID, team_id: UUID) -> Event:
        data = HouseholdAssigned(
            household_id=household_id,
            area_code="240101",
            mentor_team_id=team_id,
            previous_team_id=None,
        )
        return event(data, household_id)

    def moved(household_id: UUID, to_status: str, from_status: str) -> Event:
        data = HouseholdStatusChanged(
            household_id=household_id,
            area_code="240101",
            from_status=from_status,
            to_status=to_status,
            reason="first visit recorded",
            changed_by="service:logbook",
        )
        return event(data, household_id)

    consumer = logbook_app.state.consumer
    sessions = logbook_app.state.sessionmaker
    async with transaction(sessions) as session:
        await consumer.apply(session, [registered(known)])
    batch = [
        registered(first),
        assigned(first, team),
        assigned(known, team),
        moved(first, "in_progress", "target"),
        assigned(first, other_team),
        registered(known, status="graduated"),  # known already: what is held stays
    ]
    async with transaction(sessions) as session:
        assert await consumer.apply(session, batch) == len(batch)
    await wait_known(logbook_settings, str(first), mentor_team_id=str(other_team))
    await wait_known(logbook_settings, str(first), status="in_progress")
    await wait_known(logbook_settings, str(known), mentor_team_id=str(team), status="target")
    timeline = await db_rows(
        logbook_settings,
        "SELECT household_id, to_status FROM household_status_ref ORDER BY changed_at",
    )
    assert [(r["household_id"], r["to_status"]) for r in timeline] == [
        (known, "target"),
        (first, "target"),
        (first, "in_progress"),
        (known, "graduated"),  # the registration's own row, as one at a time kept it
    ]

    # The same events again (another delivery): each is known, nothing changes.
    async with transaction(sessions) as session:
        assert await consumer.apply(session, batch) == 0
    # One household the read model never heard of: the whole batch is refused, to be tried again.
    with pytest.raises(NotKnownYet):
        async with transaction(sessions) as session:
            await consumer.apply(session, [registered(uuid4()), assigned(stranger, team)])
    await wait_known(logbook_settings, str(first), mentor_team_id=str(other_team))


async def test_a_household_learnt_by_a_request_while_a_batch_about_it_is_open_never_deadlocks(
    logbook_settings: LogbookSettings,
) -> None:
    """A request that has not heard of a household asks the registry and adds it with its
    members, while the consumer may be applying the household's own events in a batch. The
    two write the same rows; both must commit, in whatever order their statements meet.
    (The consumer once wrote a member as its event came and the household before the commit,
    the request the other way round: each waited on the other until PostgreSQL broke one.)"""
    household_id, first, second = uuid4(), uuid4(), uuid4()
    registered = _registered(household_id, members=2)
    events = [
        Event.of(data, source="registry", subject=household_id, area_code="240101")
        for data in [
            registered,
            *(
                PersonAdded(
                    person_id=person_id,
                    household_id=household_id,
                    area_code="240101",
                    sex=None,
                    birth_date=None,
                    life_stage=None,
                    disability=False,
                    welfare_card=False,
                )
                for person_id in (first, second)
            ),
        ]
    ]
    answer = {
        "id": str(household_id),
        "area_code": "240101",
        "mentor_team_id": None,
        "status": "target",
        "person_ids": [str(second), str(first)],  # not the events' order
    }
    registry = RegistryClient(
        "http://registry",
        logbook_settings.internal_key.get_secret_value(),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)),
    )
    engine = create_engine(logbook_settings)
    sessions = create_sessionmaker(engine)

    async def request() -> None:
        async with transaction(sessions) as session:
            ctx = Context(
                caller=SERVICE_CALLER,
                repo=LogbookRepository(session),
                outbox=Outbox(session, source="test"),
                registry=registry,
                settings=logbook_settings,
            )
            assert await known_household(ctx, household_id) is not None

    try:
        async with transaction(sessions) as session:
            await load_batch(session, events)
            for event in events:
                await HANDLERS[event.type](session, event)
            learning = asyncio.create_task(request())
            await asyncio.wait({learning}, timeout=0.5)  # done, or waiting on the batch
            await write_batch(session)
        await learning
    finally:
        await registry.aclose()
        await engine.dispose()
    members = await db_rows(
        logbook_settings, "SELECT id FROM person_ref WHERE household_id = $1", household_id
    )
    assert {row["id"] for row in members} == {first, second}
    await wait_known(logbook_settings, str(household_id), status="target")
