"""Progress by area: the area, its children (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.analytics.domain import progress
from services.analytics.repository import AnalyticsRepository
from services.analytics.schemas import Progress
from shared.auth import CallerDep
from shared.db import SessionDep
from shared.errors import ResourceNotFound, responses

router = APIRouter(prefix="/v1/progress", tags=["progress"])
AreaPath = Annotated[str, Path(pattern=r"^(TH|[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{8})$")]


@router.get("/{area_code}", response_model=Progress, responses=responses(ResourceNotFound))
async def area_progress(session: SessionDep, caller: CallerDep, area_code: AreaPath) -> Progress:
    """The area's target, reached and graduated households, interventions and THB delivered,
    overall and by dimension, as of the newest event applied."""
    return await progress.area_progress(AnalyticsRepository(session), caller, area_code)


@router.get(
    "/{area_code}/children", response_model=list[Progress], responses=responses(ResourceNotFound)
)
async def children_progress(
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
