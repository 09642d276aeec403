"""A household's visits and its whole logbook timeline."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from services.logbook.api.deps import ContextDep
from services.logbook.domain import timeline, visits
from services.logbook.models import Visit
from services.logbook.schemas import TimelineEntry, VisitCreate, VisitPublic
from shared.errors import NotPermitted, ResourceNotFound, ServiceUnavailable, responses

router = APIRouter(prefix="/v1/households", tags=["logbook"])


def _public(visit: Visit) -> VisitPublic:
    return VisitPublic.model_validate({**visit.model_dump(), "capitals": visit.capitals or None})


@router.post(
    "/{household_id}/visits",
    response_model=VisitPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(ResourceNotFound, NotPermitted, ServiceUnavailable),
)
async def record_visit(
    ctx: ContextDep, household_id: UUID, body: VisitCreate, response: Response
) -> VisitPublic:
    """Record a mentor team's visit: the 4 ท analysis, the five capitals and problems found."""
    visit = await visits.record_visit(ctx, household_id, body)
    response.headers["Location"] = f"/v1/households/{household_id}/visits"
    return _public(visit)


@router.get(
    "/{household_id}/visits",
    response_model=list[VisitPublic],
    responses=responses(ResourceNotFound, NotPermitted),
)
async def list_visits(ctx: ContextDep, household_id: UUID) -> list[VisitPublic]:
    """The household's visits, oldest first."""
    return [_public(v) for v in await visits.list_visits(ctx, household_id)]


@router.get(
    "/{household_id}/logbook",
    operation_id="getHouseholdLogbook",
    summary="Get Household Logbook",
    response_model=list[TimelineEntry],
    responses=responses(ResourceNotFound, NotPermitted),
)
async def household_logbook(ctx: ContextDep, household_id: UUID) -> list[TimelineEntry]:
    """The household's whole timeline: visits, interventions, status changes, in time order."""
    return await timeline.timeline(ctx, household_id)
