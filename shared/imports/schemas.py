"""The parts of an import job's public shape that every service's import shares."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ImportState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class RejectedRow(BaseModel):
    line: int = Field(description="The line of the file (the header is line 1)")
    column: str
    reason: str
