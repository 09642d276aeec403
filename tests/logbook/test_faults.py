"""Writes go on while the registry or NATS is away; their events follow when NATS is back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from uuid import UUID

import httpx
import nats
from fastapi import FastAPI

from pinpoint.devservers import LocalNats, free_port
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.events import stream_name
from shared.settings import DEV_INTERNAL_KEY
from tests.conftest import ClientFactory, db_rows, eventually, running
from tests.logbook.support import (
    VISIT,
    count,
    household,
    intervention,
    organization,
    wait_known,
)


async def test_registry_down_stops_no_write_for_a_known_household(
    as_caller: ClientFactory, registry_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    known_id = await household(admin, team)
    # This logbook has no way to the registry: its URL leads nowhere.
    async with running(create_logbook(logbook_settings)) as logbook:
        await wait_known(logbook_settings, known_id, mentor_team_id=team)
        mentor = as_caller("mentor", "240101", UUID(team), app=logbook)
        visit = await mentor.post(f"/v1/households/{known_id}/visits", json=VISIT)
        assert visit.status_code == 201, visit.text

        unknown = await as_caller("district_officer", "2401", app=logbook).post(
            "/v1/households/0195f0c4-0000-7000-8000-000000000001/visits", json=VISIT
        )
        assert unknown.status_code == 503
        assert unknown.headers["content-type"] == "application/problem+json"


async def test_a_household_just_registered_is_asked_of_the_registry_once(
    as_caller: ClientFactory, registry_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    calls: list[str] = []
    counting = _counting(registry_app, calls)

    settings = logbook_settings.model_copy(update={"consumer_enabled": False})
    async with running(create_logbook(settings, registry_transport=counting)) as logbook:
        household_id = await household(admin)
        officer = as_caller("district_officer", "2401", app=logbook)
        for _ in range(2):
            visit = await officer.post(f"/v1/households/{household_id}/visits", json=VISIT)
            assert visit.status_code == 201, visit.text
        assert calls == [f"/internal/households/{household_id}"]
        missing = await officer.post(
            "/v1/households/0195f0c4-0000-7000-8000-000000000002/visits", json=VISIT
        )
        assert missing.status_code == 404


async def test_a_member_just_added_is_asked_of_the_registry_with_the_household(
    as_caller: ClientFactory, registry_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    calls: list[str] = []
    counting = _counting(registry_app, calls)

    # No consumer: the logbook hears of households and members only by asking.
    settings = logbook_settings.model_copy(update={"consumer_enabled": False})
    async with running(create_logbook(settings, registry_transport=counting)) as logbook:
        registered = await admin.post(
            "/v1/households",
            json={"area_code": "240101", "members": [{"first_name": "สมชาย", "last_name": "ใจดี"}]},
        )
        assert registered.status_code == 201, registered.text
        household_id = registered.json()["id"]
        first = registered.json()["members"][0]["id"]
        officer = as_caller("district_officer", "2401", app=logbook)
        given = await officer.post(
            "/v1/interventions", json=intervention(household_id, person_id=first)
        )
        assert given.status_code == 201, given.text
        assert calls == [f"/internal/households/{household_id}"]

        added = await admin.post(
            f"/v1/households/{household_id}/members",
            json={"first_name": "สมหญิง", "last_name": "ใจดี"},
        )
        assert added.status_code == 201, added.text
        given = await officer.post(
            "/v1/interventions", json=intervention(household_id, person_id=added.json()["id"])
        )
        assert given.status_code == 201, given.text
        assert len(calls) == 2

        other = await admin.post(
            "/v1/households",
            json={"area_code": "240101", "members": [{"first_name": "มานะ", "last_name": "อดทน"}]},
        )
        stranger = other.json()["members"][0]["id"]
        refused = await officer.post(
            "/v1/interventions", json=intervention(household_id, person_id=stranger)
        )
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["person_id"]
        assert await count(settings, "intervention") == 2


def _counting(registry_app: FastAPI, calls: list[str]) -> httpx.MockTransport:
    """The registry in process, noting the path of every call the logbook makes to it."""

    async def counting(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return await httpx.ASGITransport(app=registry_app).handle_async_request(request)

    return httpx.MockTransport(counting)


def _client(app: FastAPI, role: str, area: str, team: str | None = None) -> httpx.AsyncClient:
    caller = Caller(
        subject=f"{role}@{area}", role=Role(role), area=area, team_id=UUID(team) if team else None
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={IDENTITY_HEADER: mint_internal_token(caller, DEV_INTERNAL_KEY)},
    )


async def test_nats_down_stops_no_write_and_the_event_follows(
    registry_settings: RegistrySettings, logbook_settings: LogbookSettings
) -> None:
    # Not the `as_caller` fixture: it would start a second registry on the same database,
    # whose relay would publish the test registry's events to the session's NATS instead.
    broker = LocalNats(Path(tempfile.mkdtemp()) / "store", port=free_port())
    broker.start()
    try:
        registry = create_registry(registry_settings.model_copy(update={"nats_url": broker.url}))
        logbook_cfg = logbook_settings.model_copy(update={"nats_url": broker.url})
        async with (
            running(registry),
            running(
                create_logbook(logbook_cfg, registry_transport=httpx.ASGITransport(app=registry))
            ) as logbook,
        ):
            admin = _client(registry, "national_admin", "TH")
            team = await organization(admin)
            household_id = await household(admin, team)
            await wait_known(logbook_settings, household_id, mentor_team_id=team)

            broker.stop()
            mentor = _client(logbook, "mentor", "240101", team)
            visit = await mentor.post(f"/v1/households/{household_id}/visits", json=VISIT)
            assert visit.status_code == 201, visit.text
            pending = await db_rows(
                logbook_settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )
            assert pending[0][0] == 1

            broker.start()
            await eventually(
                lambda: _sent(logbook_settings), within=20, what="the visit's event published"
            )
            nc = await nats.connect(broker.url)
            try:
                info = await nc.jetstream().stream_info(
                    stream_name("LOGBOOK", logbook_settings.events_namespace)
                )
                assert info.state.messages == 1
            finally:
                await nc.close()
            assert await count(logbook_settings, "visit") == 1
    finally:
        broker.stop()


async def _sent(settings: LogbookSettings) -> bool:
    rows = await db_rows(settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return rows[0][0] == 0
