"""Routes for the other services only (never forwarded by the gateway)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from services.registry.api.deps import ContextDep
from services.registry.domain import households

router = APIRouter(prefix="/internal", include_in_schema=False)


class HouseholdSummary(BaseModel):
    """What another service needs to know of a household to act for it: no personal data."""

    id: UUID
    area_code: str
    mentor_team_id: UUID | None
    status: str
    person_ids: list[UUID]


@router.get("/households/{household_id}", response_model=HouseholdSummary)
async def household_summary(ctx: ContextDep, household_id: UUID) -> HouseholdSummary:
    """A household's id, area, team, status and its members' ids, for a service (role
    `system`)."""
    household, person_ids = await households.summary(ctx, household_id)
    return HouseholdSummary(
        id=household.id,
        area_code=household.area_code,
        mentor_team_id=household.mentor_team_id,
        status=household.status,
        person_ids=person_ids,
    )
