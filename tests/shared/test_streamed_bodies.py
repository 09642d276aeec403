"""Streamed request bodies (bulk uploads): their own size limit, never buffered whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter, FastAPI, Request

from shared.app import build_service_app
from tests.conftest import Servers, running
from tests.shared.conftest import MAX_BODY_BYTES, client_for, tiny_settings

UPLOAD = "/v1/uploads"
UPLOAD_LIMIT = 1000

router = APIRouter()


@router.post(UPLOAD)
async def upload(request: Request) -> dict[str, int]:
    """Count what arrives, one body message at a time."""
    chunks = size = 0
    async for chunk in request.stream():
        if chunk:
            chunks, size = chunks + 1, size + len(chunk)
    return {"chunks": chunks, "bytes": size}


@router.post("/v1/small")
async def small(request: Request) -> dict[str, int]:
    """An ordinary route under the ordinary limit."""
    return {"bytes": len(await request.body())}


@pytest.fixture(scope="module")
async def uploads(servers: Servers) -> AsyncIterator[FastAPI]:
    app = build_service_app(
        tiny_settings(servers),
        title="uploads",
        description="A test service with a streamed upload.",
        routers=[router],
        streamed_bodies={UPLOAD: UPLOAD_LIMIT},
    )
    async with running(app) as started:
        yield started


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_streamed_path_has_its_own_size_limit(uploads: FastAPI) -> None:
    body = b"x" * (MAX_BODY_BYTES * 4)
    async with client_for(uploads) as client:
        accepted = await client.post(UPLOAD, content=body)
        refused_elsewhere = await client.post("/v1/small", content=body)
        too_large = await client.post(UPLOAD, content=b"x" * (UPLOAD_LIMIT + 1))
        too_large_undeclared = await client.post(UPLOAD, content=_chunks(b"x" * 600, b"x" * 600))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["bytes"] == len(body)
    assert refused_elsewhere.status_code == 413
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    assert too_large_undeclared.status_code == 413


async def test_an_idempotency_key_does_not_buffer_a_streamed_body(uploads: FastAPI) -> None:
    headers = {"Idempotency-Key": "upload-1", "X-Pinpoint-Identity": "not checked here"}
    async with client_for(uploads) as client:
        response = await client.post(
            UPLOAD, content=_chunks(b"a" * 10, b"b" * 10, b"c" * 10), headers=headers
        )
    assert response.status_code == 200, response.text
    # The route saw the body as it was sent, in three messages, not as one buffered whole.
    assert response.json() == {"chunks": 3, "bytes": 30}


async def test_other_paths_still_check_the_key(uploads: FastAPI) -> None:
    async with client_for(uploads) as client:
        response = await client.post(
            "/v1/small", content=b"{}", headers={"Idempotency-Key": "x" * 201}
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
