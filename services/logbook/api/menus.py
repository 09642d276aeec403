"""The solution catalogue (เมนูแก้จน)."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.logbook.api.deps import ContextDep
from services.logbook.domain import menus
from services.logbook.schemas import MenuItemCreate, MenuItemPublic
from shared.errors import Conflict, NotPermitted, responses
from shared.indicators import Dimension

router = APIRouter(prefix="/v1/menus", tags=["logbook"])


@router.get("", response_model=list[MenuItemPublic], responses=responses())
async def list_menus(ctx: ContextDep, dimension: Dimension | None = None) -> list[MenuItemPublic]:
    """The catalogue of ready solutions, grouped by dimension."""
    rows = await menus.list_menus(ctx, dimension)
    return [MenuItemPublic.model_validate(r, from_attributes=True) for r in rows]


@router.post(
    "",
    response_model=MenuItemPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(NotPermitted, Conflict),
)
async def add_menu(ctx: ContextDep, body: MenuItemCreate) -> MenuItemPublic:
    """Add a catalogue item (national admins)."""
    return MenuItemPublic.model_validate(await menus.add_menu(ctx, body), from_attributes=True)
