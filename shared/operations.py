"""Operational routes every consuming service serves (not forwarded by the gateway)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from shared.auth import Caller, Role, requires
from shared.consumer import dead_letter_rows
from shared.errors import NotPermitted, responses

OPERATOR_ROLES = frozenset({Role.national_admin, Role.system})


class DeadLetter(BaseModel):
    """An event a consumer gave up on after its last try."""

    id: int
    consumer: str
    event_id: UUID | None
    subject: str
    stream_seq: int | None
    payload: Any
    error: str
    attempts: int
    failed_at: datetime


router = APIRouter(prefix="/ops", tags=["operations"], include_in_schema=False)


@router.get("/dead-letters", response_model=list[DeadLetter], responses=responses(NotPermitted))
async def dead_letters(
    request: Request,
    _: Annotated[Caller, Depends(requires(OPERATOR_ROLES, "read dead letters"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeadLetter]:
    """The newest events that consumers of this service gave up on, newest first."""
    rows = await dead_letter_rows(request.app.state.sessionmaker, limit)
    return [DeadLetter.model_validate(row) for row in rows]
