"""The logbook's events out (outbox → LOGBOOK) and the registry's in (REGISTRY → read model)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import nats
from fastapi import FastAPI
from nats.js.errors import NotFoundError

from services.logbook.app import create_app as create_logbook
from services.logbook.events import DURABLE
from services.logbook.settings import LogbookSettings
from shared.events import Event, stream_name
from shared.events.registry import OrganizationCreated
from tests.conftest import ClientFactory, db_rows, eventually, running
from tests.logbook.support import (
    VISIT,
    count,
    household,
    intervention,
    organization,
    stream_messages,
    wait_known,
)


def _stream(settings: LogbookSettings, stream: str) -> str:
    return f"{settings.events_namespace.upper().replace('.', '_')}{stream}"


async def _all_sent(settings: LogbookSettings) -> bool:
    rows = await db_rows(settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return bool(rows[0][0] == 0)


async def test_every_write_puts_one_event_in_the_outbox_and_on_the_logbook_stream(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    mentor = logbook_as("mentor", "240101", UUID(team))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    visit = await mentor.post(
        f"/v1/households/{household_id}/visits", json=VISIT, headers={"traceparent": traceparent}
    )
    entry = await mentor.post(
        "/v1/interventions", json=intervention(household_id, dimension="living", menu_code="LIV-03")
    )
    status = await mentor.post(
        f"/v1/interventions/{entry.json()['id']}/status", json={"status": "in_progress"}
    )
    correction = await mentor.post(
        f"/v1/interventions/{entry.json()['id']}/corrections",
        json={"amount_thb": "800.00", "reason": "ราคาถังน้ำจริง"},
    )
    refused = await mentor.post(
        "/v1/interventions", json=intervention(household_id, menu_code="HLT-01")
    )
    assert [r.status_code for r in (visit, entry, status, correction, refused)] == [
        201,
        201,
        200,
        201,
        422,
    ]

    outbox = await db_rows(logbook_settings, "SELECT * FROM outbox ORDER BY seq")
    payloads = [json.loads(row["payload"]) for row in outbox]
    assert [p["type"] for p in payloads] == [
        "logbook.visit.recorded",
        "logbook.intervention.recorded",
        "logbook.intervention.status_changed",
        "logbook.intervention.superseded",
        "logbook.intervention.recorded",
    ]
    namespace = logbook_settings.events_namespace
    for row, payload in zip(outbox, payloads, strict=True):
        assert row["subject"] == f"{namespace}{payload['type']}"
        assert str(row["id"]) == payload["id"]
        assert payload["area_code"] == payload["data"]["area_code"] == "240101"
        assert payload["data"]["household_id"] == household_id
        assert payload["source"] == "pinpoint/logbook"
        if payload["type"] != "logbook.visit.recorded":
            assert payload["data"]["dimension"] == "living"
            assert payload["data"]["menu_code"] == "LIV-03"
    assert payloads[0]["data"]["first_visit"] is True
    assert payloads[0]["data"]["problems"] == [{"dimension": "income", "indicator": "2560-20"}]
    assert payloads[2]["data"]["from_status"] == "planned"
    assert payloads[2]["data"]["to_status"] == "in_progress"
    assert payloads[3]["data"]["intervention_id"] == entry.json()["id"]
    assert payloads[3]["data"]["superseded_by"] == correction.json()["id"]
    assert payloads[4]["data"]["supersedes"] == entry.json()["id"]
    assert payloads[4]["data"]["amount_thb"] == "800.00"

    await eventually(lambda: _all_sent(logbook_settings), what="the outbox relayed")
    assert stream_name("LOGBOOK", namespace) == _stream(logbook_settings, "LOGBOOK")
    messages = await stream_messages(logbook_settings)
    assert [m.subject for m in messages] == [row["subject"] for row in outbox]
    for message, payload in zip(messages, payloads, strict=True):
        assert message.headers is not None
        assert message.headers["Nats-Msg-Id"] == payload["id"]
        assert message.data is not None
        assert json.loads(message.data) == payload
    # The request's ID and trace context travel with its event.
    first_headers = messages[0].headers or {}
    assert first_headers["X-Request-ID"] == visit.headers["x-request-id"]
    assert first_headers["traceparent"] == traceparent


async def _consumer_caught_up(settings: LogbookSettings) -> bool:
    """The logbook's REGISTRY consumer has been handed, and has settled, every message it
    takes (its subject filter's). The service creates its consumer in the background as it
    starts: until it is there, nothing has been settled."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = _stream(settings, "REGISTRY")
        try:
            info = await js.consumer_info(stream, DURABLE)
        except NotFoundError:
            return False
        return not info.num_pending and not info.num_ack_pending
    finally:
        await nc.close()


async def _publish_raw(
    settings: LogbookSettings, subject: str, data: bytes, msg_id: str | None = None
) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        ack = await nc.jetstream().publish(
            f"{settings.events_namespace}{subject}",
            data,
            headers={"Nats-Msg-Id": msg_id or str(uuid4())},
        )
        return int(ack.seq)
    finally:
        await nc.close()


async def test_a_registry_event_delivered_again_changes_nothing(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    first_team = await organization(admin)
    second_team = await organization(admin)
    household_id = await household(admin, first_team)
    await wait_known(logbook_settings, household_id, mentor_team_id=first_team)
    moved = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": second_team}
    )
    assert moved.status_code == 200, moved.text
    await wait_known(logbook_settings, household_id, mentor_team_id=second_team)
    await eventually(lambda: _consumer_caught_up(logbook_settings))
    applied = await count(logbook_settings, "processed_event")
    statuses = await count(logbook_settings, "household_status_ref")

    # A late duplicate, outside the duplicate window: the same event under another message id.
    registry_events = await stream_messages(logbook_settings, "REGISTRY")
    to_first_team = next(
        m
        for m in registry_events
        if m.data is not None
        and json.loads(m.data)["type"] == "registry.household.assigned"
        and json.loads(m.data)["data"]["mentor_team_id"] == first_team
    )
    registered = next(
        m
        for m in registry_events
        if m.data is not None
        and json.loads(m.data)["type"] == "registry.household.registered"
        and json.loads(m.data)["subject"] == household_id
    )
    for message in (to_first_team, registered):
        assert message.data is not None
        event = json.loads(message.data)
        await _publish_raw(logbook_settings, event["type"], message.data, f"again-{event['id']}")
    await eventually(lambda: _consumer_caught_up(logbook_settings), what="the duplicates seen")

    assert await count(logbook_settings, "processed_event") == applied
    assert await count(logbook_settings, "household_status_ref") == statuses
    assert await count(logbook_settings, "dead_letter") == 0
    # Applied again, the old assignment would have given the household back to the first team.
    assert await wait_known_now(logbook_settings, household_id, second_team)


async def wait_known_now(settings: LogbookSettings, household_id: str, team: str) -> bool:
    rows = await db_rows(
        settings, "SELECT mentor_team_id FROM household_ref WHERE id = $1", UUID(household_id)
    )
    return str(rows[0]["mentor_team_id"]) == team


async def test_the_consumer_handles_one_message_twice_without_effect(
    as_caller: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    first_team = await organization(admin)
    second_team = await organization(admin)
    household_id = await household(admin, first_team)
    moved = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": second_team}
    )
    assert moved.status_code == 200, moved.text
    subject = f"{logbook_settings.events_namespace}registry.household.>"

    async def relayed() -> bool:
        kinds = [
            json.loads(m.data or b"{}")["type"]
            for m in await stream_messages(logbook_settings, "REGISTRY")
        ]
        return kinds.count("registry.household.assigned") == 2

    await eventually(relayed, what="the registry's events on the stream")

    # This logbook does not consume by itself: the test hands its consumer each message, and
    # then each message again as a second delivery (a second consumer's copy of it).
    settings = logbook_settings.model_copy(update={"consumer_enabled": False})
    async with running(create_logbook(settings)) as logbook:
        consumer = logbook.state.consumer
        nc = await nats.connect(logbook_settings.nats_url)
        try:
            js = nc.jetstream()
            deliveries = []
            for _ in range(2):
                probe = await js.pull_subscribe(
                    subject, stream=_stream(logbook_settings, "REGISTRY")
                )
                deliveries.append(await probe.fetch(3, timeout=5))
            first, again = deliveries
            assert [m.data for m in first] == [m.data for m in again]
            for message in first:
                await consumer.handle(message)
            assert consumer.applied == 3
            assert await wait_known_now(logbook_settings, household_id, second_team)
            # The old assignment, applied again, would give the household back to first_team.
            for message in again:
                await consumer.handle(message)
            assert consumer.applied == 3
        finally:
            await nc.close()
    assert await wait_known_now(logbook_settings, household_id, second_team)
    assert await count(logbook_settings, "processed_event") == 3
    assert await count(logbook_settings, "household_status_ref") == 1


async def test_an_event_that_keeps_failing_is_dead_lettered_and_the_consumer_moves_on(
    as_caller: ClientFactory, logbook_app: FastAPI, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    await organization(admin)  # the stream and the consumer are there and running
    await eventually(lambda: _consumer_caught_up(logbook_settings))

    # A proper envelope whose data the handler cannot take.
    poisoned = Event(
        type="registry.household.assigned",
        source="pinpoint/registry",
        subject="not-a-household",
        area_code="240101",
        schema_version=1,
        data={"household_id": "not-a-uuid", "area_code": "240101"},
    )
    await _publish_raw(logbook_settings, poisoned.type, poisoned.model_dump_json().encode())
    # Not an envelope at all: dead-lettered on its first try.
    await _publish_raw(logbook_settings, "registry.household.assigned", b"\xff not json")
    # A good event behind them is applied while the first one is still being retried.
    agency_id = uuid4()
    good = Event.of(
        OrganizationCreated(
            organization_id=agency_id,
            kind="agency",
            name="สำนักงานเกษตรจังหวัด",
            area_code="24",
            parent_id=None,
        ),
        source="pinpoint/registry",
        subject=agency_id,
        area_code="24",
    )
    await _publish_raw(logbook_settings, good.type, good.model_dump_json().encode())

    async def agency_known() -> bool:
        rows = await db_rows(
            logbook_settings, "SELECT 1 FROM organization_ref WHERE id = $1", agency_id
        )
        return bool(rows)

    await eventually(agency_known, what="the good event applied")

    async def dead_letters() -> list[Any] | None:
        rows = await db_rows(logbook_settings, "SELECT * FROM dead_letter ORDER BY id")
        return rows if len(rows) == 2 else None

    garbage, letter = await eventually(dead_letters, within=40, what="two dead letters")
    assert garbage["event_id"] is None and garbage["attempts"] == 1
    assert "not an event envelope" in garbage["error"]
    assert letter["consumer"] == DURABLE
    assert letter["event_id"] == poisoned.id
    assert letter["attempts"] == logbook_app.state.consumer.max_deliver
    assert letter["subject"] == f"{logbook_settings.events_namespace}registry.household.assigned"
    assert "validation errors for HouseholdAssigned" in letter["error"]
    assert json.loads(letter["payload"])["id"] == str(poisoned.id)
    await eventually(lambda: _consumer_caught_up(logbook_settings), what="nothing left pending")
    processed = await db_rows(
        logbook_settings, "SELECT 1 FROM processed_event WHERE event_id = $1", poisoned.id
    )
    assert processed == []

    operator = as_caller("national_admin", "TH", app=logbook_app)
    shown = await operator.get("/ops/dead-letters")
    assert shown.status_code == 200, shown.text
    assert {d["event_id"] for d in shown.json()} == {None, str(poisoned.id)}
    assert shown.json()[0]["id"] > shown.json()[1]["id"]  # newest first
    officer = as_caller("district_officer", "2401", app=logbook_app)
    assert (await officer.get("/ops/dead-letters")).status_code == 403
