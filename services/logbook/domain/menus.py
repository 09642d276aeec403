"""The solution catalogue (เมนูแก้จน)."""

from __future__ import annotations

from collections.abc import Sequence

from services.logbook.domain.context import Context
from services.logbook.models import MenuItem
from services.logbook.schemas import MenuItemCreate
from shared.auth import Role
from shared.errors import Conflict
from shared.indicators import Dimension


async def list_menus(ctx: Context, dimension: Dimension | None) -> Sequence[MenuItem]:
    """The catalogue, grouped by dimension; reference data every caller may read."""
    return await ctx.repo.list_menus(dimension.value if dimension else None)


async def add_menu(ctx: Context, body: MenuItemCreate) -> MenuItem:
    """Add an item to the national catalogue (national admins only)."""
    ctx.caller.require(frozenset({Role.national_admin}), "add catalogue items")
    if await ctx.repo.get_menu(body.code) is not None:
        raise Conflict(f"menu item {body.code} exists already")
    item = MenuItem(**body.model_dump(), created_by=ctx.caller.subject)
    ctx.repo.add(item)
    await ctx.repo.flush()
    return item
