"""The event envelope every service publishes, and the stream layout on NATS JetStream.

The schemas in this package are the contract between services and with outside subscribers:
a type's `schema_version` goes up when its data changes in a way a consumer would notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import uuid_utils.compat as uuid_compat
from pydantic import BaseModel, ConfigDict, Field, field_validator


def uuid7() -> UUID:
    """A time-ordered UUID (RFC 9562 version 7)."""
    return uuid_compat.uuid7()


class EventData(BaseModel):
    """Base of every event's `data`: each subclass names its type and schema version."""

    model_config = ConfigDict(frozen=True)

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class Event(BaseModel):
    """The envelope (CloudEvents-like) around every event on the bus."""

    id: UUID = Field(default_factory=uuid7)
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str = Field(description="The id of the entity the event is about")
    area_code: str
    schema_version: int
    data: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _with_offset(cls, time: datetime) -> datetime:
        """A time without an offset is UTC: every time an event carries can be compared."""
        return time if time.tzinfo is not None else time.replace(tzinfo=UTC)

    @classmethod
    def of(cls, data: EventData, *, source: str, subject: str | UUID, area_code: str) -> Event:
        return cls(
            type=data.type,
            source=source,
            subject=str(subject),
            area_code=area_code,
            schema_version=data.schema_version,
            data=data.model_dump(mode="json"),
        )


class StreamSpec(BaseModel):
    """One JetStream stream: its name and the subjects it keeps."""

    name: str
    subjects: list[str]


STREAMS: dict[str, str] = {"REGISTRY": "registry", "LOGBOOK": "logbook"}


def stream_name(stream: str, namespace: str = "") -> str:
    """The stream's name under a namespace (tests give each its own)."""
    return f"{namespace.upper().replace('.', '_')}{stream}" if namespace else stream


def subject_for(event_type: str, namespace: str = "") -> str:
    """The NATS subject an event type is published on."""
    return f"{namespace}{event_type}"


def stream_specs(namespace: str = "") -> list[StreamSpec]:
    return [
        StreamSpec(name=stream_name(name, namespace), subjects=[f"{namespace}{prefix}.>"])
        for name, prefix in STREAMS.items()
    ]
