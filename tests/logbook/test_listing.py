"""`GET /v1/interventions`: every filter, corrected entries, and cursor pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory
from tests.logbook.support import household, intervention, wait_known


@dataclass
class Listing:
    national: httpx.AsyncClient
    households: dict[str, str]  # area code → household id
    ids: dict[str, str] = field(default_factory=dict)  # name → intervention id

    async def ids_for(self, client: httpx.AsyncClient | None = None, **params: str) -> list[str]:
        response = await (client or self.national).get("/v1/interventions", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        return [i["id"] for i in body["items"]]

    def named(self, *names: str) -> list[str]:
        return sorted(self.ids[n] for n in names)


@pytest.fixture
async def listing(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> AsyncIterator[Listing]:
    admin = as_caller("national_admin", "TH")
    households = {area: await household(admin, area_code=area) for area in ("240101", "240102")}
    households["240201"] = await household(admin, area_code="240201")
    for household_id in households.values():
        await wait_known(logbook_settings, household_id)
    national = logbook_as("national_admin", "TH")
    scene = Listing(national, households)

    async def record(name: str, area: str, **fields: Any) -> None:
        response = await national.post(
            "/v1/interventions", json=intervention(households[area], **fields)
        )
        assert response.status_code == 201, response.text
        scene.ids[name] = response.json()["id"]

    await record("income_a", "240101")
    await record("health_a", "240101", dimension="health", menu_code="HLT-01", status="completed")
    await record("living_b", "240102", dimension="living", menu_code="LIV-03")
    await record("income_b", "240102", menu_code="INC-03", status="in_progress")
    await record("income_c", "240201", status="completed")
    await record("old_c", "240201", dimension="education", menu_code="EDU-02")
    corrected = await national.post(
        f"/v1/interventions/{scene.ids['old_c']}/corrections",
        json={"menu_code": "EDU-05", "reason": "กองทุนผิด"},
    )
    assert corrected.status_code == 201, corrected.text
    scene.ids["new_c"] = corrected.json()["id"]
    yield scene


async def test_area_code_matches_by_prefix(listing: Listing) -> None:
    everything = listing.named("income_a", "health_a", "living_b", "income_b", "income_c", "new_c")
    assert await listing.ids_for() == everything
    assert await listing.ids_for(area_code="TH") == everything
    assert await listing.ids_for(area_code="24") == everything
    assert await listing.ids_for(area_code="2401") == listing.named(
        "income_a", "health_a", "living_b", "income_b"
    )
    assert await listing.ids_for(area_code="240102") == listing.named("living_b", "income_b")
    assert await listing.ids_for(area_code="2402") == listing.named("income_c", "new_c")
    assert await listing.ids_for(area_code="25") == []


async def test_each_filter_narrows_and_they_combine(listing: Listing) -> None:
    assert await listing.ids_for(household_id=listing.households["240101"]) == listing.named(
        "income_a", "health_a"
    )
    assert await listing.ids_for(status="completed") == listing.named("health_a", "income_c")
    assert await listing.ids_for(status="in_progress") == listing.named("income_b")
    assert await listing.ids_for(status="cancelled") == []
    assert await listing.ids_for(dimension="income") == listing.named(
        "income_a", "income_b", "income_c"
    )
    assert await listing.ids_for(dimension="education") == listing.named("new_c")
    assert await listing.ids_for(menu_code="INC-02") == listing.named("income_a", "income_c")
    assert await listing.ids_for(menu_code="EDU-02") == []
    assert await listing.ids_for(
        area_code="2401", dimension="income", status="planned"
    ) == listing.named("income_a")
    assert (
        await listing.ids_for(household_id=listing.households["240101"], area_code="240102") == []
    )


async def test_corrected_entries_only_when_asked_and_then_marked(listing: Listing) -> None:
    response = await listing.national.get(
        "/v1/interventions", params={"include_superseded": "true", "area_code": "2402"}
    )
    items = {i["id"]: i for i in response.json()["items"]}
    assert sorted(items) == listing.named("income_c", "old_c", "new_c")
    assert items[listing.ids["old_c"]]["superseded_by"] == listing.ids["new_c"]
    assert items[listing.ids["old_c"]]["menu_code"] == "EDU-02"
    assert items[listing.ids["new_c"]]["superseded_by"] is None
    assert items[listing.ids["new_c"]]["supersedes"] == listing.ids["old_c"]
    assert await listing.ids_for(menu_code="EDU-02", include_superseded="true") == listing.named(
        "old_c"
    )


async def test_the_cursor_walks_every_page_once_in_id_order(listing: Listing) -> None:
    walks: list[dict[str, str]] = [
        {},
        {"include_superseded": "true"},
        {"area_code": "2401", "limit": "3"},
    ]
    for params in walks:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            query = {"limit": "2", **params} | ({"cursor": cursor} if cursor else {})
            response = await listing.national.get("/v1/interventions", params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            assert 0 < len(body["items"]) <= int(query["limit"])
            seen += [i["id"] for i in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        unpaged = await listing.ids_for(None, **{k: v for k, v in params.items() if k != "limit"})
        assert seen == unpaged == sorted(seen), params
        assert pages == -(-len(unpaged) // int(query["limit"]))


async def test_a_forged_cursor_or_limit_is_a_400_or_422(listing: Listing) -> None:
    forged = await listing.national.get("/v1/interventions", params={"cursor": "not-a-cursor!"})
    assert forged.status_code == 400, forged.text
    assert forged.headers["content-type"] == "application/problem+json"
    for limit in ("0", "501"):
        too = await listing.national.get("/v1/interventions", params={"limit": limit})
        assert too.status_code == 422, too.text
    for bad in ({"status": "done"}, {"dimension": "wealth"}, {"menu_code": "x"}):
        assert (await listing.national.get("/v1/interventions", params=bad)).status_code == 422


async def test_a_district_officer_lists_inside_its_district_whatever_it_asks(
    listing: Listing, logbook_as: ClientFactory
) -> None:
    officer = logbook_as("district_officer", "2401")
    own = listing.named("income_a", "health_a", "living_b", "income_b")
    assert await listing.ids_for(officer) == own
    assert await listing.ids_for(officer, area_code="24") == own
    assert await listing.ids_for(officer, area_code="240101") == listing.named(
        "income_a", "health_a"
    )
    assert await listing.ids_for(officer, area_code="2402") == []
    other = await officer.get(
        "/v1/interventions", params={"household_id": listing.households["240201"]}
    )
    assert other.status_code == 404
