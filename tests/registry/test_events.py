"""What the registry publishes: outbox rows written with the change, relayed to JetStream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import citizen_id, create_organization, person, register

DEADLINE_SECONDS = 10.0


@pytest.fixture
async def jetstream(registry_settings: RegistrySettings) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(registry_settings.nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def stream_of(settings: RegistrySettings) -> str:
    return f"{settings.events_namespace.upper().replace('.', '_')}REGISTRY"


async def published(js: JetStreamContext, settings: RegistrySettings, at_least: int) -> list[Any]:
    """The stream's messages once it holds `at_least` of them (polled, with a deadline)."""
    stream = stream_of(settings)
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    count = 0
    while True:
        try:
            count = (await js.stream_info(stream)).state.messages
        except NotFoundError:
            count = 0
        if count >= at_least:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{stream} holds {count} events, not {at_least}, after {DEADLINE_SECONDS}s"
            )
        await asyncio.sleep(0.02)
    return [await js.get_msg(stream, seq) for seq in range(1, count + 1)]


async def outbox(settings: RegistrySettings) -> list[dict[str, Any]]:
    rows = await registry_rows(
        settings,
        """
        SELECT id, subject, payload::text AS payload, headers::text AS headers, sent_at
        FROM outbox ORDER BY seq""",
    )
    return [
        {**dict(r), "payload": json.loads(r["payload"]), "headers": json.loads(r["headers"])}
        for r in rows
    ]


async def test_a_registration_writes_its_events_to_the_outbox_and_the_relay_publishes_them(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    jetstream: JetStreamContext,
) -> None:
    digits = citizen_id()
    created = await register(
        admin,
        "240101",
        house_code="24010000077",
        failed_indicators=["2560-20", "2560-09"],
        members=[
            person("สมชาย", "ใจดี", citizen_id=digits, birth_date="1950-05-01", welfare_card=True)
        ],
    )
    rows = await outbox(registry_settings)
    namespace = registry_settings.events_namespace
    assert [r["subject"] for r in rows] == [
        f"{namespace}registry.household.registered",
        f"{namespace}registry.person.added",
    ]
    registered = rows[0]["payload"]
    assert registered["id"] == str(rows[0]["id"])
    assert registered["type"] == "registry.household.registered"
    assert registered["source"] == "pinpoint/registry"
    assert registered["subject"] == created["id"]
    assert registered["area_code"] == "240101"
    assert registered["schema_version"] == 1
    assert registered["data"] == {
        "household_id": created["id"],
        "area_code": "240101",
        "house_code": "24010000077",
        "status": "target",
        "survey_year": 2566,
        "failed_indicators": ["2560-09", "2560-20"],
        "dimensions": ["living", "income"],
        "mentor_team_id": None,
        "member_count": 1,
    }
    added = rows[1]["payload"]["data"]
    assert (
        added["person_id"],
        added["household_id"],
        added["life_stage"],
        added["welfare_card"],
    ) == (created["members"][0]["id"], created["id"], "elderly", True)

    messages = await published(jetstream, registry_settings, 2)
    assert [m.subject for m in messages] == [r["subject"] for r in rows]
    for message, row in zip(messages, rows, strict=True):
        assert message.headers["Nats-Msg-Id"] == str(row["id"])
        assert json.loads(message.data) == row["payload"]
        text = message.data.decode()
        for secret in ("สมชาย", "ใจดี", digits, digits[1:12]):
            assert secret not in text


async def test_the_outbox_marks_what_the_stream_acknowledged(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    jetstream: JetStreamContext,
) -> None:
    await register(admin)
    await published(jetstream, registry_settings, 1)
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while any(r["sent_at"] is None for r in await outbox(registry_settings)):
        assert asyncio.get_running_loop().time() < deadline, "the outbox was never marked sent"
        await asyncio.sleep(0.02)


async def test_every_change_to_a_household_is_published_in_order(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
    jetstream: JetStreamContext,
) -> None:
    team = await create_organization(admin, "mentor_team", "240101")
    created = await register(admin)
    base = f"/v1/households/{created['id']}"
    assert (await admin.put(f"{base}/mentor-team", json={"team_id": team["id"]})).status_code == 200
    assert (
        await admin.patch(
            base,
            json={"failed_indicators": ["2560-27"], "location": {"lat": 13.6, "lon": 101.0}},
            headers={"If-Match": '"2"'},
        )
    ).status_code == 200
    assert (await admin.post(f"{base}/status", json={"status": "in_progress"})).status_code == 201
    member = await admin.post(f"{base}/members", json=person("ก", "ข"))
    assert (
        await admin.patch(
            f"/v1/persons/{member.json()['id']}",
            json={"disability": True},
            headers={"If-Match": '"1"'},
        )
    ).status_code == 200

    messages = await published(jetstream, registry_settings, 7)
    events = [json.loads(m.data) for m in messages]
    assert [e["type"] for e in events] == [
        "registry.organization.created",
        "registry.household.registered",
        "registry.household.assigned",
        "registry.household.updated",
        "registry.household.status_changed",
        "registry.person.added",
        "registry.person.changed",
    ]
    assigned, updated, status = events[2]["data"], events[3]["data"], events[4]["data"]
    assert (assigned["mentor_team_id"], assigned["previous_team_id"]) == (team["id"], None)
    assert (updated["changed"], updated["dimensions"]) == (
        ["failed_indicators", "location"],
        ["public_access"],
    )
    assert (status["from_status"], status["to_status"]) == ("target", "in_progress")
    assert events[6]["data"]["changed"] == ["disability"]
    assert all(e["area_code"] == "240101" for e in events)


async def test_the_request_id_travels_with_the_event(
    as_caller: ClientFactory,
    registry_settings: RegistrySettings,
    jetstream: JetStreamContext,
) -> None:
    officer = as_caller("district_officer", "2401")
    traced = await officer.post(
        "/v1/households", headers={"X-Request-ID": "req-registry-1"}, json={"area_code": "240101"}
    )
    untraced = await officer.post(
        "/v1/households",
        json={"area_code": "240101"},
        headers={"X-Request-ID": "not sane because of spaces"},
    )
    messages = await published(jetstream, registry_settings, 2)
    assert messages[0].headers["X-Request-ID"] == "req-registry-1" == traced.headers["x-request-id"]
    assert messages[1].headers["X-Request-ID"] == untraced.headers["x-request-id"]
    assert UUID(untraced.headers["x-request-id"])


async def test_a_refused_change_publishes_nothing(
    admin: httpx.AsyncClient,
    registry_settings: RegistrySettings,
) -> None:
    created = await register(admin)
    before = await outbox(registry_settings)
    await admin.post(f"/v1/households/{created['id']}/status", json={"status": "graduated"})
    await admin.patch(
        f"/v1/households/{created['id']}", json={"address": "x"}, headers={"If-Match": '"9"'}
    )
    await admin.post("/v1/households", json={"area_code": "240199"})
    assert [r["id"] for r in await outbox(registry_settings)] == [r["id"] for r in before]
