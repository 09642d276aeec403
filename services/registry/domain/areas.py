"""Areas, villages and indicators."""

from __future__ import annotations

from collections.abc import Sequence

from services.registry.domain.context import Context
from services.registry.models import Area, IndicatorRow
from services.registry.schemas import VillageCreate
from shared.auth import Role
from shared.errors import Conflict, ResourceNotFound, Unprocessable
from shared.thai import AreaLevel, area_level, parent_code

VILLAGE_ROLES = frozenset({Role.national_admin, Role.province_officer})


async def get_area(ctx: Context, code: str) -> Area:
    """One area by its code; areas are reference data every caller may read."""
    try:
        area_level(code)  # a malformed code names no area, and must not reach the database
    except ValueError:
        raise ResourceNotFound(f"no area {code!r}") from None
    area = await ctx.repo.get_area(code)
    if area is None:
        raise ResourceNotFound(f"no area {code}")
    return area


async def list_areas(
    ctx: Context, *, level: AreaLevel | None, parent: str | None, after: str | None, limit: int
) -> Sequence[Area]:
    return await ctx.repo.list_areas(
        level=level.value if level else None, parent=parent, after=after, limit=limit
    )


async def add_village(ctx: Context, body: VillageCreate) -> Area:
    """Add a village under an existing sub-district inside the caller's scope."""
    ctx.caller.require(VILLAGE_ROLES, "add villages")
    parent = parent_code(body.code)
    assert parent is not None
    subdistrict = await ctx.repo.get_area(parent)
    if subdistrict is None or not ctx.caller.sees(parent):
        raise Unprocessable(f"no sub-district {parent} to hold village {body.code}")
    if await ctx.repo.get_area(body.code) is not None:
        raise Conflict(f"village {body.code} exists already")
    area = Area(
        code=body.code,
        level=area_level(body.code).value,
        name_th=body.name_th,
        name_en=body.name_en,
        parent_code=parent,
    )
    ctx.repo.add(area)
    await ctx.repo.flush()
    return area


async def list_indicators(ctx: Context) -> Sequence[IndicatorRow]:
    return await ctx.repo.list_indicators()
