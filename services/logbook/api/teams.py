"""A mentor team's worklist."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.logbook.api.deps import ContextDep
from services.logbook.domain import worklist
from services.logbook.schemas import WorklistItem
from shared.errors import NotPermitted, responses

router = APIRouter(prefix="/v1/teams", tags=["logbook"])


@router.get(
    "/{team_id}/worklist",
    operation_id="getTeamWorklist",
    summary="Get Team Worklist",
    response_model=list[WorklistItem],
    responses=responses(NotPermitted),
)
async def team_worklist(
    ctx: ContextDep,
    team_id: UUID,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[WorklistItem]:
    """The team's households in visiting order (never visited, then most overdue), with
    their open interventions and the problems no intervention addresses yet."""
    return await worklist.worklist(ctx, team_id, limit=limit)
