"""A tiny service built with shared.app, to prove the conventions every service inherits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter, FastAPI, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from pinpoint.devservers import free_port
from shared.app import build_service_app
from shared.bus import Bus
from shared.consumer import Consumer, Handler
from shared.errors import ResourceNotFound, responses
from shared.events import Event, subject_for
from shared.jetstream import PullConsumer
from shared.settings import ServiceSettings
from tests.conftest import Servers, running

MAX_BODY_BYTES = 64

router = APIRouter(prefix="/v1/things", tags=["things"])


class ThingCreate(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


class Thing(ThingCreate):
    id: int


@router.post("", response_model=Thing, status_code=status.HTTP_201_CREATED, responses=responses())
async def create_thing(body: ThingCreate) -> Thing:
    """Make a thing."""
    return Thing(id=1, **body.model_dump())


@router.get("/boom")
async def boom() -> None:
    """Fail the way a bug would."""
    raise RuntimeError("a bug")


@router.get("/{thing_id}", response_model=Thing, responses=responses(ResourceNotFound))
async def get_thing(thing_id: int) -> Thing:
    """One thing; there is none with id 0."""
    if thing_id == 0:
        raise ResourceNotFound("no thing 0")
    return Thing(id=thing_id, name="a thing", count=1)


def tiny_settings(servers: Servers, **changes: object) -> ServiceSettings:
    """Settings of a service that owns no tables (the relay stays off)."""
    values: dict[str, object] = {
        "environment": "test",
        "service_name": f"tiny-{uuid4().hex[:8]}",
        "database_url": servers.database_url("postgres"),
        "nats_url": servers.nats.url,
        "relay_enabled": False,
        "max_body_bytes": MAX_BODY_BYTES,
        "database_pool_size": 2,
    }
    return ServiceSettings.model_validate({**values, **changes})


def tiny_app(settings: ServiceSettings) -> FastAPI:
    return build_service_app(
        settings, title="tiny", description="A test service.", routers=[router]
    )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions=False: see the 500 the caller sees, not the bug behind it.
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://tiny"
    )


@pytest.fixture(scope="module")
async def tiny(servers: Servers) -> AsyncIterator[FastAPI]:
    async with running(tiny_app(tiny_settings(servers))) as app:
        yield app


@pytest.fixture
async def client(tiny: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(tiny) as client:
        yield client


def unused_nats_url() -> str:
    """The URL of a port nothing listens on: NATS as seen while it is down."""
    return f"nats://127.0.0.1:{free_port()}"


def bare_event(event_type: str) -> Event:
    """An event of this type about a new subject, with no data (for the consumer's own tests)."""
    return Event(
        type=event_type,
        source="test",
        subject=str(uuid4()),
        area_code="240101",
        schema_version=1,
        data={},
    )


async def one_event_for(
    bus: Bus, sessionmaker: async_sessionmaker[AsyncSession], durable: str, handler: Handler
) -> tuple[Consumer, Event, PullConsumer]:
    """A REGISTRY consumer with one handler, one event of its type published (with no data),
    and the consumer's subscription to fetch it from."""
    event = bare_event("registry.household.registered")
    consumer = Consumer(
        bus, sessionmaker, stream="REGISTRY", durable=durable, handlers={event.type: handler}
    )
    js = await bus.jetstream()
    await js.publish(subject_for(event.type, bus.namespace), event.model_dump_json().encode())
    return consumer, event, await consumer._subscribe()
