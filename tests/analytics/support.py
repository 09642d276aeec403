"""A scripted history written through the services, and totals computed from their records."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx

from services.logbook.settings import LogbookSettings
from shared.indicators import INDICATORS_BY_CODE
from tests.conftest import ClientFactory, eventually
from tests.logbook.support import VISIT, organization, wait_known

# One intervention was completed two months before it was written down: the monthly series
# counts it in the month it was completed.
COMPLETED_AT = datetime.now(UTC) - timedelta(days=62)
PLAN = [  # area, failed indicators
    ("240101", ["2560-20", "2560-08"]),
    ("240101", ["2560-16"]),
    ("240102", ["2560-22", "2560-27"]),
    ("240201", ["2560-09"]),
    ("240201", ["2560-04", "2560-20"]),
]


async def all_items(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = (
            await client.get(
                path, params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


def expected_totals(
    households: list[dict[str, Any]], interventions: list[dict[str, Any]], area: str
) -> dict[str, Any]:
    """The area's totals computed straight from the services' records."""
    inside = [h for h in households if h["area_code"].startswith(area) or area == "TH"]
    live = defaultdict(set)
    for i in interventions:
        if i["status"] != "cancelled":
            live[i["household_id"]].add(i["dimension"])
    counts: dict[str, int] = defaultdict(int)
    amount = Decimal(0)
    for i in interventions:
        if i["area_code"].startswith(area) or area == "TH":
            counts[i["status"]] += 1
            if i["status"] == "completed" and i["amount_thb"]:
                amount += Decimal(i["amount_thb"])
    return {
        "target_households": len(inside),
        "reached_households": sum(1 for h in inside if live[h["id"]]),
        "graduated_households": sum(1 for h in inside if h["status"] == "graduated"),
        "interventions": {
            s: counts[s] for s in ("planned", "in_progress", "completed", "cancelled")
        },
        "amount_thb": f"{amount:.2f}",
        "income_target": sum(1 for h in inside if "income" in h["dimensions"]),
    }


def actual_totals(progress: dict[str, Any]) -> dict[str, Any]:
    return {
        k: progress[k]
        for k in (
            "target_households",
            "reached_households",
            "graduated_households",
            "interventions",
            "amount_thb",
        )
    } | {"income_target": progress["dimensions"]["income"]["target_households"]}


async def write_history(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Registrations, visits, interventions with status changes, a correction, a
    cancellation and a graduation across two districts; returns the services' records."""
    admin = as_caller("national_admin", "TH")
    teams = {sub: await organization(admin, area=sub) for sub in ("240101", "240102", "240201")}
    ids = []
    for area, failed in PLAN:
        created = await admin.post(
            "/v1/households",
            json={"area_code": area, "address": "1 หมู่ 1", "failed_indicators": failed},
        )
        household_id = created.json()["id"]
        await admin.put(f"/v1/households/{household_id}/mentor-team", json={"team_id": teams[area]})
        ids.append(household_id)
    for household_id, (area, _) in zip(ids, PLAN, strict=True):
        await wait_known(logbook_settings, household_id, mentor_team_id=teams[area])

    def mentor(area: str) -> httpx.AsyncClient:
        return logbook_as("mentor", area, UUID(teams[area]))

    async def give(n: int, dimension: str, menu: str, amount: str, **extra: Any) -> str:
        response = await mentor(PLAN[n][0]).post(
            "/v1/interventions",
            json={
                "household_id": ids[n],
                "dimension": dimension,
                "menu_code": menu,
                "amount_thb": amount,
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    for n in (0, 2, 3):
        visit = await mentor(PLAN[n][0]).post(f"/v1/households/{ids[n]}/visits", json=VISIT)
        assert visit.status_code == 201, visit.text
    done = await give(
        0, "income", "INC-02", "1500.00", status="completed", completed_at=COMPLETED_AT.isoformat()
    )
    await give(0, "living", "LIV-01", "20000.00")
    wrong = await give(2, "income", "INC-01", "600.00", status="completed")
    fixed = await mentor(PLAN[2][0]).post(
        f"/v1/interventions/{wrong}/corrections", json={"amount_thb": "7200.00", "reason": "ทั้งปี"}
    )
    assert fixed.status_code == 201, fixed.text
    cancelled = await give(3, "living", "LIV-03", "3000.00")
    await mentor(PLAN[3][0]).post(
        f"/v1/interventions/{cancelled}/status", json={"status": "cancelled"}
    )
    started = await give(4, "health", "HLT-04", "0")
    await mentor(PLAN[4][0]).post(
        f"/v1/interventions/{started}/status", json={"status": "in_progress"}
    )
    assert done

    async def in_progress() -> bool:
        body = (await admin.get(f"/v1/households/{ids[0]}")).json()
        return bool(body["status"] == "in_progress")

    await eventually(in_progress, what="the registry moving the visited household on")
    graduated = await as_caller("district_officer", "2401").post(
        f"/v1/households/{ids[0]}/status", json={"status": "graduated", "reason": "ติดตามแล้ว"}
    )
    assert graduated.status_code == 201, graduated.text

    return await records(admin, logbook_as("national_admin", "TH"))


async def records(
    registry_admin: httpx.AsyncClient, logbook_admin: httpx.AsyncClient
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every household (with its dimensions) and every live intervention, as the registry and
    the logbook record them: what `expected_totals` counts."""
    households = [
        {
            **h,
            "dimensions": sorted(
                {INDICATORS_BY_CODE[c].dimension.value for c in h["failed_indicators"]}
            ),
        }
        for h in await all_items(registry_admin, "/v1/households")
    ]
    interventions = await all_items(logbook_admin, "/v1/interventions")
    return households, interventions


async def progress_matches(
    analyst: httpx.AsyncClient,
    households: list[dict[str, Any]],
    interventions: list[dict[str, Any]],
) -> None:
    for area in ("TH", "24", "2401", "2402", "240101", "240102", "240201"):
        expected = expected_totals(households, interventions, area)

        async def matches(area: str = area, expected: dict[str, Any] = expected) -> bool:
            response = await analyst.get(f"/v1/progress/{area}")
            return response.status_code == 200 and actual_totals(response.json()) == expected

        await eventually(matches, what=f"progress of {area} equal to the records")
