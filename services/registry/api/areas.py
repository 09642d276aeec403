"""Areas (provinces to villages) and the basic-minimum-needs indicators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from services.registry.api.deps import ContextDep
from services.registry.domain import areas
from services.registry.schemas import AreaPublic, IndicatorPublic, VillageCreate
from shared.errors import BadRequest, Conflict, NotPermitted, ResourceNotFound, responses
from shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of
from shared.thai import AreaCode, AreaLevel, area_level

router = APIRouter(prefix="/v1", tags=["areas"])


def _after_code(cursor: str | None) -> str | None:
    """The area code an area list's cursor points after; BadRequest for any other cursor."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    code = key.get("code")
    try:
        if isinstance(code, str):
            area_level(code)  # a well-formed code, nothing the database would choke on
            return code
    except ValueError:
        pass
    raise BadRequest("the cursor is not valid")


@router.get("/areas", response_model=Page[AreaPublic], responses=responses(BadRequest))
async def list_areas(
    ctx: ContextDep,
    level: AreaLevel | None = None,
    parent: Annotated[AreaCode | None, Query(description="Children of this area")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[AreaPublic]:
    """List areas by level and parent, in code order."""
    rows = await areas.list_areas(
        ctx, level=level, parent=parent, after=_after_code(cursor), limit=limit + 1
    )
    items = [AreaPublic.model_validate(r, from_attributes=True) for r in rows]
    return page_of(items, limit, lambda a: {"code": a.code})


@router.get("/areas/{code}", response_model=AreaPublic, responses=responses(ResourceNotFound))
async def get_area(ctx: ContextDep, code: Annotated[str, Path(max_length=8)]) -> AreaPublic:
    """One area by its DOPA code (`TH` for the whole country)."""
    return AreaPublic.model_validate(await areas.get_area(ctx, code), from_attributes=True)


@router.post(
    "/areas",
    response_model=AreaPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(NotPermitted, Conflict),
)
async def add_village(ctx: ContextDep, body: VillageCreate) -> AreaPublic:
    """Add a village (8-digit code) under an existing sub-district."""
    return AreaPublic.model_validate(await areas.add_village(ctx, body), from_attributes=True)


@router.get("/indicators", response_model=list[IndicatorPublic], responses=responses())
async def list_indicators(ctx: ContextDep) -> list[IndicatorPublic]:
    """The basic-minimum-needs indicators, each with its dimension and set version."""
    rows = await areas.list_indicators(ctx)
    return [IndicatorPublic.model_validate(r, from_attributes=True) for r in rows]
