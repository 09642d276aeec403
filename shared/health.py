"""`/healthz` (the process is alive) and `/readyz` (its database and NATS answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[Request], Awaitable[bool]]


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        results = {name: await check(request) for name, check in checks.items()}
        ready = all(results.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not_ready",
                "checks": {k: "ok" if v else "failing" for k, v in results.items()},
            },
            status_code=200 if ready else 503,
        )

    return router
