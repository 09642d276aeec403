"""Interventions: record, list, change status, correct."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from services.logbook.api.deps import ContextDep
from services.logbook.domain import interventions
from services.logbook.schemas import (
    InterventionCorrection,
    InterventionCreate,
    InterventionDetail,
    InterventionPublic,
    InterventionStatus,
    MenuCode,
    StatusUpdate,
)
from shared.errors import (
    BadRequest,
    Conflict,
    InvalidTransition,
    NotPermitted,
    ResourceNotFound,
    ServiceUnavailable,
    responses,
)
from shared.indicators import Dimension
from shared.pagination import CursorQuery, LimitQuery, Page, after_id, id_key, page_of
from shared.thai import AreaCode

router = APIRouter(prefix="/v1/interventions", tags=["interventions"])


@router.post(
    "",
    response_model=InterventionPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted, ServiceUnavailable),
)
async def record_intervention(
    ctx: ContextDep, body: InterventionCreate, response: Response
) -> InterventionPublic:
    """Record help planned for, or given to, a household."""
    row = await interventions.record_intervention(ctx, body)
    response.headers["Location"] = f"/v1/interventions/{row.id}"
    return row


@router.get(
    "",
    response_model=Page[InterventionPublic],
    # 404: `household_id` names a household outside the caller's scope, or none.
    responses=responses(ResourceNotFound, NotPermitted, BadRequest),
)
async def list_interventions(
    ctx: ContextDep,
    area_code: Annotated[AreaCode | None, Query(description="Matches by prefix")] = None,
    household_id: UUID | None = None,
    status: InterventionStatus | None = None,
    dimension: Dimension | None = None,
    menu_code: Annotated[MenuCode | None, Query()] = None,
    include_superseded: Annotated[bool, Query(description="Also corrected entries")] = False,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[InterventionPublic]:
    """Interventions inside the caller's area, filtered; corrected entries left out."""
    rows = await interventions.list_interventions(
        ctx,
        area_code=area_code,
        household_id=household_id,
        status=status,
        dimension=dimension.value if dimension else None,
        menu_code=menu_code,
        include_superseded=include_superseded,
        after=after_id(cursor),
        limit=limit + 1,
    )
    return page_of(list(rows), limit, id_key)


@router.get(
    "/{intervention_id}",
    response_model=InterventionDetail,
    responses=responses(ResourceNotFound, NotPermitted),
)
async def get_intervention(ctx: ContextDep, intervention_id: UUID) -> InterventionDetail:
    """One intervention with its status history."""
    return await interventions.get_intervention(ctx, intervention_id)


@router.post(
    "/{intervention_id}/status",
    operation_id="changeInterventionStatus",
    summary="Change Intervention Status",
    response_model=InterventionDetail,
    responses=responses(ResourceNotFound, NotPermitted, InvalidTransition, Conflict),
)
async def change_status(
    ctx: ContextDep, intervention_id: UUID, body: StatusUpdate
) -> InterventionDetail:
    """Move it to in_progress or completed, or cancel it while it is open."""
    return await interventions.change_status(ctx, intervention_id, body)


@router.post(
    "/{intervention_id}/corrections",
    operation_id="correctIntervention",
    summary="Correct Intervention",
    response_model=InterventionPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted, Conflict),
)
async def correct(
    ctx: ContextDep, intervention_id: UUID, body: InterventionCorrection, response: Response
) -> InterventionPublic:
    """Record a corrected entry that supersedes this one (nothing is edited in place)."""
    row = await interventions.correct(ctx, intervention_id, body)
    response.headers["Location"] = f"/v1/interventions/{row.id}"
    return row
