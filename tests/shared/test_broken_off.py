"""A transaction PostgreSQL breaks off to let another go on (a deadlock, a serialization
failure) wrote nothing and goes through when tried again: a request is answered 503 with
Retry-After (never a 500), a consumer tries it again at once (never a try of the event)."""

from __future__ import annotations

import asyncio
import random
from uuid import uuid4

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI

from services.registry.settings import RegistrySettings
from shared.app import build_service_app
from shared.bus import Bus
from shared.consumer import BROKEN_OFF_TRIES
from shared.db import SessionDep, create_engine, create_sessionmaker, run
from shared.events import Event, stream_name
from tests.conftest import Servers, running
from tests.shared.conftest import client_for, one_event_for, tiny_settings

router = APIRouter(prefix="/v1/locks")


@router.post("/{first}/{second}")
async def take_two(session: SessionDep, first: int, second: int) -> dict[str, int]:
    """Take two locks of this transaction, a moment apart."""
    await run(session, sa.select(sa.func.pg_advisory_xact_lock(first)))
    await asyncio.sleep(0.3)
    await run(session, sa.select(sa.func.pg_advisory_xact_lock(second)))
    return {"first": first, "second": second}


async def test_a_request_broken_off_by_a_deadlock_is_a_503_to_send_again(
    servers: Servers,
) -> None:
    app: FastAPI = build_service_app(
        tiny_settings(servers), title="locks", description="Two locks.", routers=[router]
    )
    one, two = random.sample(range(1 << 30), 2)
    async with running(app), client_for(app) as client:
        answers = await asyncio.gather(
            client.post(f"/v1/locks/{one}/{two}"), client.post(f"/v1/locks/{two}/{one}")
        )
        assert sorted(a.status_code for a in answers) == [200, 503], [a.text for a in answers]
        (refused,) = [a for a in answers if a.status_code == 503]
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "1"
        problem = refused.json()
        assert problem["status"] == 503
        assert "send it again" in problem["detail"]
        # The same request again goes through.
        again = await client.post(refused.request.url.path)
        assert again.status_code == 200, again.text


async def test_a_consumer_tries_a_broken_off_transaction_again_at_once(
    registry_settings: RegistrySettings,
) -> None:
    """Broken off twice, the batch goes through on its third try: applied once, at its first
    delivery, neither split nor sent back to be delivered again."""
    namespace = f"brokenoff{uuid4().hex[:8]}"
    bus = Bus(registry_settings.nats_url, name="broken-off-test", namespace=namespace)
    engine = create_engine(registry_settings)
    calls: list[int] = []
    applied: list[Event] = []

    async def handler(session: object, event: Event) -> None:
        calls.append(1)
        if len(calls) < BROKEN_OFF_TRIES:
            # What PostgreSQL says when it picks this transaction to end a deadlock.
            await run(
                session,  # type: ignore[arg-type]
                sa.text(
                    "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected'"
                    " USING ERRCODE = '40P01'; END $$"
                ),
            )
        applied.append(event)

    try:
        consumer, event, subscription = await one_event_for(
            bus, create_sessionmaker(engine), "broken-off", handler
        )
        (message,) = await subscription.fetch_first(1, wait=5)
        await consumer.handle_batch([message])
        assert [e.id for e in applied] == [event.id]
        assert len(calls) == BROKEN_OFF_TRIES
        assert consumer.applied == 1
        await asyncio.sleep(0.5)
        js = await bus.jetstream()
        info = await js.consumer_info(stream_name("REGISTRY", namespace), "broken-off")
        assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (0, 0, 0)
    finally:
        await bus.close()
        await engine.dispose()
