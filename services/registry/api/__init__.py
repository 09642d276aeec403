"""The registry's routes, one router per resource."""

from fastapi import APIRouter

from services.registry.api import areas, households, internal, organizations, persons

routers: list[APIRouter] = [
    areas.router,
    organizations.router,
    households.router,
    persons.router,
    internal.router,
]
