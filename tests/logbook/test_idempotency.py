"""`Idempotency-Key` on the logbook's writes: a retried POST is answered, not acted on twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory
from tests.logbook.support import VISIT, count, household, intervention, organization, wait_known


@dataclass
class Scene:
    mentor: httpx.AsyncClient
    household: str
    team: str


@pytest.fixture
async def scene(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> AsyncIterator[Scene]:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    yield Scene(logbook_as("mentor", "240101", UUID(team), subject="mentor-a"), household_id, team)


def _writes(scene: Scene) -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Each write: its path, the table it fills, a body and another body."""
    return {
        "intervention": (
            "/v1/interventions",
            "intervention",
            intervention(scene.household),
            intervention(scene.household, amount_thb="99.00"),
        ),
        "visit": (
            f"/v1/households/{scene.household}/visits",
            "visit",
            VISIT,
            {**VISIT, "note": "อีกครั้ง"},
        ),
    }


@pytest.mark.parametrize("write", ["intervention", "visit"])
async def test_the_same_key_and_body_replays_the_first_answer_and_writes_once(
    scene: Scene, logbook_settings: LogbookSettings, write: str
) -> None:
    path, table, body, _ = _writes(scene)[write]
    headers = {"Idempotency-Key": f"{write}-0001"}
    first = await scene.mentor.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await scene.mentor.post(path, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert await count(logbook_settings, table) == 1
    assert await count(logbook_settings, "outbox") == 1


@pytest.mark.parametrize("write", ["intervention", "visit"])
async def test_the_same_key_with_another_body_is_a_409_and_writes_nothing(
    scene: Scene, logbook_settings: LogbookSettings, write: str
) -> None:
    path, table, body, other = _writes(scene)[write]
    headers = {"Idempotency-Key": f"{write}-0002"}
    assert (await scene.mentor.post(path, json=body, headers=headers)).status_code == 201
    clash = await scene.mentor.post(path, json=other, headers=headers)
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == "application/problem+json"
    assert await count(logbook_settings, table) == 1
    assert await count(logbook_settings, "outbox") == 1


async def test_without_a_key_or_with_a_new_key_each_post_writes(
    scene: Scene, logbook_settings: LogbookSettings
) -> None:
    body = intervention(scene.household)
    for headers in ({}, {}, {"Idempotency-Key": "k-1"}, {"Idempotency-Key": "k-2"}):
        response = await scene.mentor.post("/v1/interventions", json=body, headers=headers)
        assert response.status_code == 201, response.text
    assert await count(logbook_settings, "intervention") == 4


async def test_keys_belong_to_their_caller(
    scene: Scene, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    colleague = logbook_as("mentor", "240101", UUID(scene.team), subject="mentor-b")
    body = intervention(scene.household)
    headers = {"Idempotency-Key": "shared-key"}
    mine = await scene.mentor.post("/v1/interventions", json=body, headers=headers)
    theirs = await colleague.post("/v1/interventions", json=body, headers=headers)
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert await count(logbook_settings, "intervention") == 2


async def test_a_refused_write_keeps_no_key_so_the_corrected_retry_acts(
    scene: Scene, logbook_settings: LogbookSettings
) -> None:
    headers = {"Idempotency-Key": "retry-after-422"}
    bad = await scene.mentor.post(
        "/v1/interventions",
        json=intervention(scene.household, menu_code="HLT-01"),
        headers=headers,
    )
    assert bad.status_code == 422
    good = await scene.mentor.post(
        "/v1/interventions", json=intervention(scene.household), headers=headers
    )
    assert good.status_code == 201, good.text
    assert "idempotent-replayed" not in good.headers
    assert await count(logbook_settings, "intervention") == 1


async def test_status_changes_and_corrections_replay_too(
    scene: Scene, logbook_settings: LogbookSettings
) -> None:
    entry = (
        await scene.mentor.post("/v1/interventions", json=intervention(scene.household))
    ).json()
    for path, body in (
        (f"/v1/interventions/{entry['id']}/status", {"status": "in_progress"}),
        (f"/v1/interventions/{entry['id']}/corrections", {"amount_thb": "5.00", "reason": "แก้"}),
    ):
        headers = {"Idempotency-Key": path}
        first = await scene.mentor.post(path, json=body, headers=headers)
        again = await scene.mentor.post(path, json=body, headers=headers)
        assert first.status_code in (200, 201), first.text
        assert again.status_code == first.status_code
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert await count(logbook_settings, "intervention_status_change") == 3
    assert await count(logbook_settings, "intervention") == 2


async def test_two_racing_posts_with_one_key_write_once(
    scene: Scene, logbook_settings: LogbookSettings
) -> None:
    body = intervention(scene.household)
    headers = {"Idempotency-Key": "double-click"}
    answers = await asyncio.gather(
        *(scene.mentor.post("/v1/interventions", json=body, headers=headers) for _ in range(4))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 201 and set(statuses) <= {201, 409}, statuses
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    assert await count(logbook_settings, "intervention") == 1
