"""Bad entries are refused whole; corrections supersede; nothing is edited in place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows
from tests.logbook.support import VISIT, count, household, organization, wait_known


@dataclass
class Scene:
    admin: httpx.AsyncClient
    mentor: httpx.AsyncClient
    officer: httpx.AsyncClient
    team: str
    household: str


@pytest.fixture
async def scene(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> AsyncIterator[Scene]:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    yield Scene(
        admin,
        logbook_as("mentor", "240101", UUID(team)),
        logbook_as("district_officer", "2401"),
        team,
        household_id,
    )


def _intervention(scene: Scene, **fields: object) -> dict[str, object]:
    return {
        "household_id": scene.household,
        "dimension": "income",
        "menu_code": "INC-02",
        "amount_thb": "1200.50",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"menu_code": "INC-99"}, "menu_code"),
        ({"menu_code": "HLT-01"}, "menu_code"),
        ({"amount_thb": "-5"}, "amount_thb"),
        ({"amount_thb": "12.345"}, "amount_thb"),
        ({"amount_thb": 12.5}, None),
        ({"dimension": "wealth"}, "dimension"),
        ({"status": "completed", "completed_at": "2999-01-01T00:00:00Z"}, "completed_at"),
        ({"status": "planned", "completed_at": "2026-01-01T00:00:00Z"}, "completed_at"),
        # A moment without its offset is refused, not guessed to be UTC.
        ({"status": "completed", "completed_at": "2026-01-01T10:00:00"}, "completed_at"),
        ({"status": "completed", "completed_at": "2026-01-01"}, "completed_at"),
    ],
)
async def test_a_bad_intervention_is_refused_and_nothing_is_written(
    scene: Scene,
    logbook_settings: LogbookSettings,
    fields: dict[str, object],
    field: str | None,
) -> None:
    response = await scene.mentor.post("/v1/interventions", json=_intervention(scene, **fields))
    if field is None:  # a float amount is accepted as the decimal it spells
        assert response.status_code == 201, response.text
        assert response.json()["amount_thb"] == "12.50"
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.text
    assert await count(logbook_settings, "intervention") == 0
    assert await count(logbook_settings, "outbox") == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"capitals": {**VISIT["capitals"], "human": 6}}, "capitals.human"),  # type: ignore[dict-item]
        ({"capitals": {**VISIT["capitals"], "social": 0}}, "capitals.social"),  # type: ignore[dict-item]
        ({"visited_at": "2999-01-01T00:00:00+07:00"}, "visited_at"),
        ({"problems": [{"dimension": "health", "indicator": "2560-20"}]}, "problems.0.indicator"),
        ({"next_visit_due": "2020-01-01"}, "next_visit_due"),
        ({"visited_at": "2026-11-01T09:30:00"}, "visited_at"),
        ({"visited_at": "2026-11-01"}, "visited_at"),
    ],
)
async def test_a_bad_visit_is_refused_and_nothing_is_written(
    scene: Scene, logbook_settings: LogbookSettings, change: dict[str, object], field: str
) -> None:
    response = await scene.mentor.post(
        f"/v1/households/{scene.household}/visits", json={**VISIT, **change}
    )
    assert response.status_code == 422, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.text
    assert await count(logbook_settings, "visit") == 0


async def test_a_visit_without_a_date_picks_the_follow_up_by_situation(scene: Scene) -> None:
    with_problems = await scene.mentor.post(f"/v1/households/{scene.household}/visits", json=VISIT)
    without = await scene.mentor.post(
        f"/v1/households/{scene.household}/visits",
        json={**VISIT, "problems": [], "visited_at": "2026-11-02T09:00:00+07:00"},
    )
    chosen = await scene.mentor.post(
        f"/v1/households/{scene.household}/visits",
        json={**VISIT, "next_visit_due": "2026-11-10", "visited_at": "2026-11-03T09:00:00+07:00"},
    )
    assert with_problems.json()["next_visit_due"] == "2026-12-01"
    assert without.json()["next_visit_due"] == "2027-01-31"
    assert chosen.json()["next_visit_due"] == "2026-11-10"


async def test_a_correction_supersedes_the_entry_and_leaves_it_as_it_was(
    scene: Scene, logbook_settings: LogbookSettings
) -> None:
    first = (await scene.mentor.post("/v1/interventions", json=_intervention(scene))).json()
    corrected = await scene.mentor.post(
        f"/v1/interventions/{first['id']}/corrections",
        json={"amount_thb": "1000.00", "reason": "พิมพ์จำนวนเงินผิด"},
    )
    assert corrected.status_code == 201, corrected.text
    new = corrected.json()
    assert new["supersedes"] == first["id"] and new["amount_thb"] == "1000.00"
    assert new["menu_code"] == "INC-02"

    old = (await scene.mentor.get(f"/v1/interventions/{first['id']}")).json()
    assert old["amount_thb"] == "1200.50" and old["superseded_by"] == new["id"]

    again = await scene.mentor.post(
        f"/v1/interventions/{first['id']}/corrections",
        json={"amount_thb": "5.00", "reason": "อีกครั้ง"},
    )
    assert again.status_code == 409
    moved = await scene.mentor.post(
        f"/v1/interventions/{first['id']}/status", json={"status": "completed"}
    )
    assert moved.status_code == 409

    listed = (
        await scene.officer.get("/v1/interventions", params={"household_id": scene.household})
    ).json()
    assert [i["id"] for i in listed["items"]] == [new["id"]]
    types = [
        r["type"]
        for r in await db_rows(
            logbook_settings, "SELECT payload->>'type' AS type FROM outbox ORDER BY seq"
        )
    ]
    assert types == [
        "logbook.intervention.recorded",
        "logbook.intervention.superseded",
        "logbook.intervention.recorded",
    ]


async def test_cancel_from_any_open_state_but_never_after_completion(scene: Scene) -> None:
    one = (await scene.mentor.post("/v1/interventions", json=_intervention(scene))).json()
    two = (await scene.mentor.post("/v1/interventions", json=_intervention(scene))).json()
    await scene.mentor.post(f"/v1/interventions/{two['id']}/status", json={"status": "in_progress"})
    for entry in (one, two):
        cancelled = await scene.mentor.post(
            f"/v1/interventions/{entry['id']}/status",
            json={"status": "cancelled", "note": "ย้ายออก"},
        )
        assert cancelled.status_code == 200, cancelled.text
    done = (
        await scene.mentor.post("/v1/interventions", json=_intervention(scene, status="completed"))
    ).json()
    assert done["completed_at"] is not None
    refused = await scene.mentor.post(
        f"/v1/interventions/{done['id']}/status", json={"status": "cancelled"}
    )
    assert refused.status_code == 409


async def test_a_mentor_of_another_team_cannot_write(
    scene: Scene,
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
) -> None:
    other_team = await organization(scene.admin)
    stranger = logbook_as("mentor", "240101", UUID(other_team))
    visit = await stranger.post(f"/v1/households/{scene.household}/visits", json=VISIT)
    assert visit.status_code == 403
    help_ = await stranger.post("/v1/interventions", json=_intervention(scene))
    assert help_.status_code == 403
    assert (
        await count(logbook_settings, "visit") == await count(logbook_settings, "intervention") == 0
    )


async def test_an_officer_of_another_district_gets_404(
    scene: Scene, logbook_as: ClientFactory
) -> None:
    other = logbook_as("district_officer", "2402")
    assert (
        await other.post(f"/v1/households/{scene.household}/visits", json=VISIT)
    ).status_code == 404
    assert (await other.get(f"/v1/households/{scene.household}/logbook")).status_code == 404
    listed = (await other.get("/v1/interventions")).json()
    assert listed["items"] == []


async def test_an_unknown_household_is_404(scene: Scene) -> None:
    response = await scene.officer.post(
        "/v1/households/0195f0c4-0000-7000-8000-000000000000/visits", json=VISIT
    )
    assert response.status_code == 404


async def test_menus_are_grouped_by_dimension_and_grow_by_national_admins(
    scene: Scene, logbook_as: ClientFactory
) -> None:
    menus = (await scene.officer.get("/v1/menus")).json()
    assert {m["dimension"] for m in menus} == {
        "health",
        "living",
        "education",
        "income",
        "public_access",
    }
    assert any(m["code"] == "INC-01" and "600" in m["name_th"] for m in menus)
    item = {"code": "INC-99", "dimension": "income", "name_th": "ทดลอง", "name_en": "Trial"}
    assert (await scene.officer.post("/v1/menus", json=item)).status_code == 403
    national = logbook_as("national_admin", "TH")
    assert (await national.post("/v1/menus", json=item)).status_code == 201
    assert (await national.post("/v1/menus", json=item)).status_code == 409
