"""`/healthz` (the process is alive) and `/readyz` (its database, NATS and workers answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse


@dataclass
class CheckResult:
    """A readiness check's verdict with what an operator needs to see behind it."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


ReadinessCheck = Callable[[Request], Awaitable[bool | CheckResult]]


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        results = {}
        for name, check in checks.items():
            result = await check(request)
            results[name] = result if isinstance(result, CheckResult) else CheckResult(result)
        ready = all(result.ok for result in results.values())
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "checks": {name: "ok" if r.ok else "failing" for name, r in results.items()},
        }
        details = {name: r.detail for name, r in results.items() if r.detail}
        if details:
            body["details"] = details
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
