"""Series requests at the ends of the calendar, which schemathesis found answered with a 500."""

from __future__ import annotations

from fastapi import FastAPI

from tests.conftest import ClientFactory


async def test_year_zero_is_refused_as_invalid_input(
    as_caller: ClientFactory, analytics_app: FastAPI
) -> None:
    analyst = as_caller("analyst", "TH", app=analytics_app)
    for params in ({"to": "0000-01"}, {"from": "0000-12", "to": "0001-01"}):
        response = await analyst.get("/v1/progress/TH/series", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_series_near_year_one_starts_at_the_calendars_first_month(
    as_caller: ClientFactory, analytics_app: FastAPI
) -> None:
    analyst = as_caller("analyst", "TH", app=analytics_app)
    response = await analyst.get("/v1/progress/TH/series", params={"to": "0001-03"})
    assert response.status_code == 200, response.text
    assert [m["month"] for m in response.json()["months"]] == ["0001-01", "0001-02", "0001-03"]


async def test_a_series_may_end_in_the_last_month_of_the_calendar(
    as_caller: ClientFactory, analytics_app: FastAPI
) -> None:
    analyst = as_caller("analyst", "TH", app=analytics_app)
    response = await analyst.get("/v1/progress/TH/series", params={"to": "9999-12"})
    assert response.status_code == 200, response.text
    months = [m["month"] for m in response.json()["months"]]
    assert months[0] == "9999-01"
    assert months[-1] == "9999-12"
    assert len(months) == 12
