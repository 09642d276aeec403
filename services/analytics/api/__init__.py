"""The analytics routes."""

from fastapi import APIRouter

from services.analytics.api import progress
from shared import operations

routers: list[APIRouter] = [operations.router, progress.router]
