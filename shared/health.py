"""`/healthz` (the process is alive) and `/readyz` (its database, NATS and workers answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from shared.errors import BadRequest, FieldError, problem_response


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
    async def readyz(
        request: Request,
        check: Annotated[
            list[str] | None,
            Query(description="Judge readiness on these checks only (all by default)"),
        ] = None,
    ) -> JSONResponse:
        """Every check's verdict; 503 unless all pass. `?check=database` runs and judges that
        check alone (an orchestrator keeps a pod in service while NATS is away: writes wait in
        the outbox; and a probe never waits on a check it did not ask for)."""
        unknown = set(check or ()) - checks.keys()
        if unknown:
            return problem_response(
                request,
                status=BadRequest.status,
                slug=BadRequest.slug,
                title=BadRequest.title,
                detail=f"no check {', '.join(sorted(unknown))}; known: {', '.join(checks)}",
                errors=[FieldError(field="check", message="unknown check")],
            )
        results = {}
        for name, run in checks.items():
            if check and name not in check:
                continue
            result = await run(request)
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
