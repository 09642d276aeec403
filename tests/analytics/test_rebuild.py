"""`pinpoint analytics rebuild`: fresh projections from the streams, swapped in live."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI

from services.analytics.rebuild import RebuildReport, rebuild
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from tests.analytics.support import all_items, progress_matches, write_history
from tests.conftest import ClientFactory, db_rows, eventually
from tests.faults.support import Services, quiet

AREAS = ("TH", "24", "2401", "2402", "240101", "240102", "240201")


async def _everything(analyst: httpx.AsyncClient) -> dict[str, Any]:
    """Every answer analytics gives about the history's areas."""
    answers: dict[str, Any] = {}
    for area in AREAS:
        for path in ("", "/children", "/series"):
            response = await analyst.get(f"/v1/progress/{area}{path}")
            assert response.status_code == 200, response.text
            answers[f"{area}{path}"] = response.json()
    return answers


async def test_a_rebuild_gives_the_same_answers_and_repairs_a_damaged_projection(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    analytics_app: FastAPI,
) -> None:
    households, interventions = await write_history(as_caller, logbook_as, logbook_settings)
    analyst = as_caller("analyst", "TH", app=analytics_app)
    await progress_matches(analyst, households, interventions)
    await quiet(
        Services(registry_settings, logbook_settings, analytics_settings, logbook_settings.nats_url)
    )
    before = await _everything(analyst)
    (events,) = await db_rows(analytics_settings, "SELECT count(*) FROM processed_event")

    # Damage the live projections: the rebuild owes nothing to them.
    await db_rows(analytics_settings, "UPDATE area_progress SET target_households = 999")
    await db_rows(analytics_settings, "DELETE FROM area_month")
    assert (await analyst.get("/v1/progress/TH")).json()["target_households"] == 999

    report = await rebuild(analytics_settings)

    assert sum(report.applied.values()) == events["count"]
    assert await _everything(analyst) == before
    (after,) = await db_rows(analytics_settings, "SELECT count(*) FROM processed_event")
    assert after["count"] == events["count"]
    schemas = await db_rows(
        analytics_settings,
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'analytics_%'",
    )
    assert schemas == []  # the fresh tables moved in, the retired ones are gone


async def test_writes_during_a_rebuild_count_once(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    analytics_app: FastAPI,
) -> None:
    households, interventions = await write_history(as_caller, logbook_as, logbook_settings)
    analyst = as_caller("analyst", "TH", app=analytics_app)
    await progress_matches(analyst, households, interventions)
    household = next(h for h in households if h["area_code"] == "240201")
    mentor = logbook_as("mentor", "240201", UUID(household["mentor_team_id"]))

    started = asyncio.Event()
    finished: list[bool] = []

    async def keep_writing() -> None:
        for n in range(12):
            if n == 3:
                started.set()
            response = await mentor.post(
                "/v1/interventions",
                json={
                    "household_id": household["id"],
                    "dimension": "income",
                    "menu_code": "INC-02",
                    "amount_thb": f"{100 + n}.00",
                    "status": "completed",
                },
            )
            assert response.status_code == 201, response.text
            finished.append(bool(rebuilt))
            await asyncio.sleep(0.05)

    rebuilt: list[RebuildReport] = []

    async def rebuild_once_writing() -> None:
        await started.wait()
        rebuilt.append(await rebuild(analytics_settings))

    await asyncio.gather(rebuild_once_writing(), keep_writing())
    assert not finished[3]  # writes went on while the rebuild ran

    interventions = await all_items(logbook_as("national_admin", "TH"), "/v1/interventions")
    assert len(interventions) == 5 + 12  # the history's live entries, and these
    await progress_matches(analyst, households, interventions)


async def test_the_rebuild_command_runs_against_running_servers(
    analytics_settings: AnalyticsSettings, analytics_app: FastAPI
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=analytics_app), base_url="http://analytics"
    ) as client:

        async def ready() -> bool:  # the streams exist once its consumers have subscribed
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, what="analytics ready")
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pinpoint",
            "analytics",
            "rebuild",
            "--database-url",
            analytics_settings.database_url,
            "--nats-url",
            analytics_settings.nats_url,
        ],
        env={**os.environ, "PINPOINT_EVENTS_NAMESPACE": analytics_settings.events_namespace},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt in" in done.stderr
