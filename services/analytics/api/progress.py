"""Progress by area: the area, its children (JSON, CSV or a chart), its monthly series."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.analytics.domain import progress
from services.analytics.domain.chart import children_chart
from services.analytics.events import THAI_TIME
from services.analytics.repository import AnalyticsRepository
from services.analytics.schemas import Progress, ProgressSeries
from shared.auth import CallerDep
from shared.db import SessionDep
from shared.errors import FieldError, ResourceNotFound, Unprocessable, responses
from shared.indicators import Dimension

router = APIRouter(prefix="/v1/progress", tags=["progress"])
AreaPath = Annotated[str, Path(pattern=r"^(TH|[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{8})$")]
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
MAX_MONTHS = 120


@router.get("/{area_code}", response_model=Progress, responses=responses(ResourceNotFound))
async def get_progress(session: SessionDep, caller: CallerDep, area_code: AreaPath) -> Progress:
    """The area's target, reached and graduated households, interventions and THB delivered,
    overall and by dimension, as of the newest event applied."""
    return await progress.area_progress(AnalyticsRepository(session), caller, area_code)


@router.get(
    "/{area_code}/children", response_model=list[Progress], responses=responses(ResourceNotFound)
)
async def list_child_progress(
    session: SessionDep,
    caller: CallerDep,
    area_code: AreaPath,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[Progress] | Response:
    """One row per child area (for a province: its districts), by graduated ratio."""
    rows = await progress.children_progress(AnalyticsRepository(session), caller, area_code)
    if format == "json":
        return rows
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "area_code",
            "name_th",
            "name_en",
            "target_households",
            "reached_households",
            "graduated_households",
            "reached_ratio",
            "graduated_ratio",
            "planned",
            "in_progress",
            "completed",
            "cancelled",
            "amount_thb",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.area_code,
                r.name_th,
                r.name_en,
                r.target_households,
                r.reached_households,
                r.graduated_households,
                r.reached_ratio,
                r.graduated_ratio,
                r.interventions.planned,
                r.interventions.in_progress,
                r.interventions.completed,
                r.interventions.cancelled,
                r.amount_thb,
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="progress-{area_code}.csv"'},
    )


def _month(value: str, field: str) -> date:
    year, month = value.split("-")
    if int(year) < 1:  # the pattern lets 0000 through; the calendar starts at year 1
        raise Unprocessable("there is no year 0", errors=[FieldError(field=field, message="0000")])
    return date(int(year), int(month), 1)


def _months_back(month: date, count: int) -> date:
    """The month `count` months earlier, or the calendar's first month if that is earlier."""
    index = max(month.year * 12 + month.month - 1 - count, 12)
    return date(index // 12, index % 12 + 1, 1)


@router.get(
    "/{area_code}/series",
    response_model=ProgressSeries,
    responses=responses(ResourceNotFound, Unprocessable),
)
async def get_progress_series(
    session: SessionDep,
    caller: CallerDep,
    area_code: AreaPath,
    from_: Annotated[
        str | None,
        Query(alias="from", pattern=MONTH, description="First month (default: 11 before `to`)"),
    ] = None,
    to: Annotated[
        str | None,
        Query(pattern=MONTH, description="Last month, YYYY-MM (default: this month, Thai time)"),
    ] = None,
    dimension: Annotated[
        Dimension | Literal["all"], Query(description="One dimension, or all of them")
    ] = "all",
) -> ProgressSeries:
    """The area's totals at the end of each month and each month's net change."""
    this_month = f"{datetime.now(UTC).astimezone(THAI_TIME):%Y-%m}"
    last = _month(to or this_month, "to")
    first = _month(from_, "from") if from_ else _months_back(last, 11)
    if first > last:
        raise Unprocessable(
            "`from` is after `to`", errors=[FieldError(field="from", message="after `to`")]
        )
    if _months_back(last, MAX_MONTHS - 1) > first:
        raise Unprocessable(
            f"at most {MAX_MONTHS} months at a time",
            errors=[FieldError(field="from", message=f"more than {MAX_MONTHS} months before `to`")],
        )
    return await progress.series(
        AnalyticsRepository(session), caller, area_code, str(dimension), first, last
    )


@router.get(
    "/{area_code}/chart.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "A bar chart of the children"},
        **responses(ResourceNotFound),
    },
)
async def get_progress_chart(
    session: SessionDep, caller: CallerDep, area_code: AreaPath
) -> Response:
    """The children's reached and graduated ratios as a bar chart (SVG, Thai labels)."""
    repo = AnalyticsRepository(session)
    area = await progress.area_progress(repo, caller, area_code)
    children = await progress.children_progress(repo, caller, area_code)
    return Response(children_chart(area, children), media_type="image/svg+xml; charset=utf-8")
