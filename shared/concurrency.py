"""Optimistic concurrency for PATCH/PUT: `ETag` out, `If-Match` in."""

from __future__ import annotations

from fastapi import Response

from shared.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def check_if_match(if_match: str | None, version: int) -> None:
    """Refuse a change made against anything but the current version."""
    if if_match is None:
        raise PreconditionRequired("send If-Match with the ETag you last read")
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in candidates and etag(version) not in candidates:
        raise PreconditionFailed("someone changed this record since you read it; read it again")
