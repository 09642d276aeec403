"""The logbook's routes, one router per resource."""

from fastapi import APIRouter

from services.logbook.api import households, imports, interventions, menus, teams
from shared import operations

routers: list[APIRouter] = [
    operations.router,
    menus.router,
    households.router,
    interventions.router,
    teams.router,
    imports.router,
]
