"""The registry's routes, one router per resource."""

from fastapi import APIRouter

from services.registry.api import areas, households, imports, internal, organizations, persons
from shared import operations

routers: list[APIRouter] = [
    operations.router,
    areas.router,
    organizations.router,
    households.router,
    persons.router,
    imports.router,
    internal.router,
]
