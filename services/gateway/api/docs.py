"""`/openapi.json` and `/docs`: the one public document of every service's routes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def openapi() -> JSONResponse:
    """The merged OpenAPI 3.1 document (built once, on the first request, in a worker thread:
    it loads every service's code, which the gateway needs for nothing else)."""
    from services.gateway.openapi import public_openapi

    return JSONResponse(public_openapi())


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI over the public document."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="pinpoint API")
