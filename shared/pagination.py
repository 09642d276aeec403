"""Cursor pagination: opaque cursors over a stable sort key, never offsets."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

from shared.errors import BadRequest

T = TypeVar("T")

MAX_LIMIT = 500

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (≤ 500)")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The key a cursor points after; BadRequest if it was not made by `encode_cursor`."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the cursor is not valid") from exc
    if not isinstance(value, dict):
        raise BadRequest("the cursor is not valid")
    return value


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], dict[str, Any]]) -> Page[T]:
    """A page from `limit + 1` fetched rows: the extra row only says that more follow."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit and items else None
    return Page(items=items, next_cursor=next_cursor)


def after_id(cursor: str | None) -> UUID | None:
    """The id an id-ordered list's cursor points after."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        return UUID(str(key["id"]))
    except (KeyError, ValueError) as exc:
        raise BadRequest("the cursor is not valid") from exc


def id_key(item: Any) -> dict[str, Any]:
    return {"id": str(item.id)}
