"""The monthly series, the chart of the children, and what analytics tells operators."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree

import httpx
from fastapi import FastAPI

from services.analytics.events import THAI_TIME
from services.logbook.settings import LogbookSettings
from tests.analytics.support import COMPLETED_AT, actual_totals, progress_matches, write_history
from tests.conftest import ClientFactory


def _month(moment: datetime) -> str:
    return f"{moment.astimezone(THAI_TIME):%Y-%m}"


async def _settled(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_app: FastAPI,
) -> httpx.AsyncClient:
    households, interventions = await write_history(as_caller, logbook_as, logbook_settings)
    analyst = as_caller("analyst", "TH", app=analytics_app)
    await progress_matches(analyst, households, interventions)
    return analyst


async def test_the_series_ends_at_the_totals_and_counts_each_change_in_its_month(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_app: FastAPI,
) -> None:
    analyst = await _settled(as_caller, logbook_as, logbook_settings, analytics_app)
    now, completed = _month(datetime.now(UTC)), _month(COMPLETED_AT)

    for area in ("TH", "2401", "240101"):
        progress = (await analyst.get(f"/v1/progress/{area}")).json()
        response = await analyst.get(f"/v1/progress/{area}/series", params={"to": now})
        assert response.status_code == 200, response.text
        series = response.json()
        months = series["months"]
        assert [m["month"] for m in months][-1] == now
        assert len(months) == 12  # `from` defaults to eleven months before `to`
        # The last month ends where the totals stand; the changes add up to them.
        assert actual_totals(months[-1] | {"dimensions": progress["dimensions"]}) == (
            actual_totals(progress)
        )
        assert months[-1]["graduated_ratio"] == progress["graduated_ratio"]
        summed = sum(Decimal(m["change"]["amount_thb"]) for m in months)
        assert f"{summed:.2f}" == progress["amount_thb"]
        for status in ("planned", "in_progress", "completed", "cancelled"):
            assert (
                sum(m["change"]["interventions"][status] for m in months)
                == (progress["interventions"][status])
            )

    th = (await analyst.get("/v1/progress/TH/series", params={"to": now})).json()["months"]
    by_month = {m["month"]: m for m in th}
    # The intervention completed two months back counts then, although written today.
    assert by_month[completed]["change"]["interventions"]["completed"] == 1
    assert by_month[completed]["change"]["amount_thb"] == "1500.00"
    nothing = {
        "target_households": 0,
        "reached_households": 0,
        "graduated_households": 0,
        "interventions": {"planned": 0, "in_progress": 0, "completed": 0, "cancelled": 0},
        "amount_thb": "0.00",
    }
    assert all(m["change"] == nothing for m in th if m["month"] not in (completed, now))
    assert by_month[completed]["interventions"]["completed"] == 1
    assert by_month[completed]["target_households"] == 0  # the households came later

    income = await analyst.get(
        "/v1/progress/TH/series", params={"to": now, "from": now, "dimension": "income"}
    )
    assert income.status_code == 200, income.text
    (month,) = income.json()["months"]
    progress = (await analyst.get("/v1/progress/TH")).json()
    assert month["target_households"] == progress["dimensions"]["income"]["target_households"]
    assert income.json()["dimension"] == "income"


async def test_a_bad_series_request_is_refused_with_a_problem(
    as_caller: ClientFactory, analytics_app: FastAPI
) -> None:
    analyst = as_caller("analyst", "TH", app=analytics_app)
    for params in (
        {"from": "2026-05", "to": "2026-01"},
        {"from": "2000-01", "to": "2026-01"},
        {"from": "2026-13"},
        {"to": "26-01"},
        {"dimension": "happiness"},
    ):
        response = await analyst.get("/v1/progress/TH/series", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    outside = as_caller("analyst", "24", app=analytics_app)
    assert (await outside.get("/v1/progress/10/series")).status_code == 404


async def test_the_chart_is_an_svg_with_one_labelled_pair_of_bars_per_district(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_app: FastAPI,
) -> None:
    analyst = await _settled(as_caller, logbook_as, logbook_settings, analytics_app)
    response = await analyst.get("/v1/progress/24/chart.svg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    svg = ElementTree.fromstring(response.text)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    texts = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    children = (await analyst.get("/v1/progress/24/children")).json()
    names = [c["name_th"] for c in children]
    assert len(names) == 11
    assert [t for t in texts if t in names] == names  # in the children's order
    assert "ความก้าวหน้า ฉะเชิงเทรา" in texts
    bars = list(svg.iter("{http://www.w3.org/2000/svg}rect"))
    assert len(bars) == 1 + 2 + 2 * 11  # background, legend, two bars per district
    first = children[0]
    assert f"{first['graduated_ratio'] * 100:.1f}%" in texts

    assert (await analyst.get("/v1/progress/99/chart.svg")).status_code == 404


async def test_readiness_and_metrics_show_each_consumer_and_its_lag(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_app: FastAPI,
) -> None:
    await _settled(as_caller, logbook_as, logbook_settings, analytics_app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=analytics_app), base_url="http://analytics"
    ) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        details = ready.json()["details"]["consumers"]
        assert set(details) == {"analytics-registry", "analytics-logbook"}
        for consumer in details.values():
            assert consumer["state"] == "consuming"
            assert consumer["pending"] == 0
            assert consumer["applied"] > 0
            assert 0 <= consumer["newest_event_age_seconds"] < 120
        metrics = (await client.get("/metrics")).text
    assert 'pinpoint_consumer_lag{consumer="analytics-logbook",service="analytics"} 0.0' in metrics
    assert "pinpoint_consumer_newest_event_age_seconds" in metrics
