"""The transactional outbox against the real PostgreSQL and NATS: no event lost, none doubled."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import nats
import pytest
from nats.js.api import RawStreamMsg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from pinpoint.devservers import LocalNats, free_port
from services.registry.app import create_app
from services.registry.settings import RegistrySettings
from shared import outbox
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.bus import Bus
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import EventData, stream_name
from shared.outbox import Outbox, OutboxRelay
from tests.conftest import Servers, eventually, registry_rows, running
from tests.registry.imports_support import csv_bytes, import_file, row


class ThingHappened(EventData):
    """A stand-in event on the REGISTRY stream."""

    type = "registry.thing.happened"

    n: int
    note: str


async def stream_messages(nats_url: str, namespace: str) -> list[RawStreamMsg]:
    """Every message of the namespaced REGISTRY stream, in order."""
    nc = await nats.connect(nats_url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        name = stream_name("REGISTRY", namespace)
        state = (await js.stream_info(name)).state
        if not state.messages:
            return []
        return [await js.get_msg(name, seq) for seq in range(state.first_seq, state.last_seq + 1)]
    finally:
        await nc.close()


async def pending_ids(settings: RegistrySettings) -> set[UUID]:
    rows = await registry_rows(settings, "SELECT id FROM outbox WHERE sent_at IS NULL")
    return {row["id"] for row in rows}


@pytest.fixture
async def engine(registry_settings: RegistrySettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(registry_settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def make_relay(
    registry_settings: RegistrySettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[..., OutboxRelay]]:
    """Relays as the replicas of a service run them: each with its own NATS connection."""
    buses: list[Bus] = []

    def make(
        batch_size: int = 500,
        nats_url: str | None = None,
        full_look_seconds: float = 5.0,
        idle_seconds: float = 0.05,
        retention: timedelta | None = None,
    ) -> OutboxRelay:
        bus = Bus(
            nats_url or registry_settings.nats_url,
            name="test-relay",
            namespace=registry_settings.events_namespace,
        )
        buses.append(bus)
        return OutboxRelay(
            sessionmaker,
            bus,
            batch_size=batch_size,
            idle_seconds=idle_seconds,
            full_look_seconds=full_look_seconds,
            retention=retention,
        )

    yield make
    for bus in buses:
        await bus.close()


async def write_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    namespace: str,
    count: int,
    *,
    fail: bool = False,
) -> list[UUID]:
    """Stage `count` events in one transaction; roll it back if `fail`."""
    ids: list[UUID] = []
    try:
        async with transaction(sessionmaker) as session:
            outbox = Outbox(
                session, source="test", namespace=namespace, headers={"X-Request-ID": "req-1"}
            )
            for n in range(count):
                event = outbox.add(
                    ThingHappened(n=n, note="ครัวเรือนเป้าหมาย"), subject=uuid4(), area_code="240101"
                )
                ids.append(event.id)
            if fail:
                raise RuntimeError("the change failed")
    except RuntimeError:
        if not fail:
            raise
    return ids


async def test_committed_events_are_published_with_their_id_and_marked_sent(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    namespace = registry_settings.events_namespace
    ids = await write_events(sessionmaker, namespace, 3)
    assert await pending_ids(registry_settings) == set(ids)

    assert await make_relay().relay_once() == 3

    assert await pending_ids(registry_settings) == set()
    messages = await stream_messages(registry_settings.nats_url, namespace)
    assert [UUID(m.headers["Nats-Msg-Id"]) for m in messages if m.headers] == ids
    first = messages[0]
    assert first.subject == f"{namespace}registry.thing.happened"
    assert first.headers and first.headers["X-Request-ID"] == "req-1"
    envelope = json.loads(first.data or b"")
    assert envelope["id"] == str(ids[0])
    assert envelope["type"] == "registry.thing.happened"
    assert envelope["data"] == {"n": 0, "note": "ครัวเรือนเป้าหมาย"}


async def test_the_backlog_is_the_events_not_yet_published(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    namespace = registry_settings.events_namespace
    relay = make_relay(batch_size=4)
    assert await relay.backlog() == 0
    await write_events(sessionmaker, namespace, 10)
    assert await relay.backlog() == 10
    assert await relay.relay_once() == 4
    assert await relay.backlog() == 6
    await write_events(sessionmaker, namespace, 2)
    assert await relay.backlog() == 8
    while await relay.relay_once():
        pass
    assert await relay.backlog() == 0


async def _published(settings: RegistrySettings) -> list[UUID]:
    messages = await stream_messages(settings.nats_url, settings.events_namespace)
    return [UUID(m.headers["Nats-Msg-Id"]) for m in messages if m.headers]


async def _one_late_behind_six(
    settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    relay: OutboxRelay,
) -> tuple[UUID, list[UUID]]:
    """A change that takes the first place in the outbox but commits after the six events
    behind it, while the relay (batches of two) takes its first full batch from the start."""
    namespace = settings.events_namespace
    async with transaction(sessionmaker) as slow:
        late = Outbox(slow, source="test", namespace=namespace).add(
            ThingHappened(n=-1, note="ช้า"), subject=uuid4(), area_code="240101"
        )
        await slow.flush()
        behind = await write_events(sessionmaker, namespace, 6)
        assert await relay.relay_once() == 2
    return late.id, behind


async def test_a_relay_with_a_backlog_looks_past_its_last_batch_and_misses_no_late_commit(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    relay = make_relay(batch_size=2, full_look_seconds=60)
    late, behind = await _one_late_behind_six(registry_settings, sessionmaker, relay)
    # Committed now, below the rows the relay has published: its next looks start past them.
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 2
    assert await _published(registry_settings) == behind
    # Nothing past the last batch: the look from the start finds the late one.
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert await _published(registry_settings) == [*behind, late]
    assert await pending_ids(registry_settings) == set()


async def test_a_relay_with_a_backlog_still_looks_from_the_start_every_few_seconds(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    relay = make_relay(batch_size=2, full_look_seconds=0.3)
    late, behind = await _one_late_behind_six(registry_settings, sessionmaker, relay)
    await asyncio.sleep(0.35)
    # Batches still come full, yet the look is due: the late one goes before the rest.
    assert await relay.relay_once() == 2
    assert await _published(registry_settings) == [*behind[:2], late, behind[2]]
    while await relay.relay_once():
        pass
    assert await _published(registry_settings) == [*behind[:2], late, *behind[2:]]


async def test_a_relay_spaces_its_looks_and_holds_its_prune_while_they_step_over_uncommitted_rows(
    registry_settings: RegistrySettings,
    make_relay: Callable[..., OutboxRelay],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows a transaction has written and not committed (a bulk import's outbox rows) are in
    the pending index, and every look from the start steps over them to find nothing: the relay
    waits a few times as long as such a look took before the next, not its idle tick, and does
    not prune (its look would step over them too) while its looks are that slow."""
    # Here a look over the uncommitted rows takes 15 ms or more (tens of ms on a busy machine);
    # at national size, seconds. The idle tick is well below it, so a slow look is told apart.
    monkeypatch.setattr(outbox, "SLOW_LOOK_SECONDS", 0.005)
    monkeypatch.setattr(outbox, "PRUNE_EVERY_SECONDS", 0.0)
    relay = make_relay(idle_seconds=0.004, retention=timedelta(hours=72))
    looks: list[tuple[float, float, int]] = []  # start, end, events sent
    prunes: list[float] = []
    relay_once, prune = relay.relay_once, relay.prune

    enough = asyncio.Event()

    async def timed() -> int:
        started = time.monotonic()
        sent = await relay_once()
        looks.append((started, time.monotonic(), sent))
        if len(looks) >= 6:
            enough.set()
        return sent

    async def counted(older_than: timedelta, *, batch: int = 10_000) -> int:
        prunes.append(time.monotonic())
        return await prune(older_than, batch=batch)

    relay.relay_once, relay.prune = timed, counted  # type: ignore[method-assign]
    conn = await asyncpg.connect(registry_settings.database_url.replace("+asyncpg", ""))
    importing = conn.transaction()
    await importing.start()
    try:
        await conn.execute(
            "INSERT INTO outbox (id, subject, payload)"
            " SELECT gen_random_uuid(), 'registry.thing.happened', '{}'"
            " FROM generate_series(1, 300000)"
        )
        stop = asyncio.Event()
        running_relay = asyncio.create_task(relay.run(stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 30)
        stop.set()
        relay.wake()
        await running_relay
    finally:
        await importing.rollback()
        await conn.close()

    assert looks and not any(sent for _, _, sent in looks)
    spaced = [
        (following - ended, ended - started)
        for (started, ended, _), (following, _, _) in itertools.pairwise(looks)
    ]
    # Looks of a few times the idle tick: without the spacing, the next came a tick later.
    slow = [(gap, took) for gap, took in spaced if took > 2 * relay.idle_seconds]
    assert len(slow) >= 3, f"too few slow looks to tell: {spaced}"
    for gap, took in slow:
        assert gap >= took, (gap, took)
    # Due at every turn here, the prune ran once: before the first look, which was slow.
    assert len(prunes) == 1 and prunes[0] < looks[0][0]


async def test_an_import_wakes_its_relay_and_its_events_go_at_once(
    registry_settings: RegistrySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's idle tick here is a minute: only the woken relay publishes the imported
    household's event within seconds."""
    looked = asyncio.Event()
    relay_once = OutboxRelay.relay_once

    async def noted(self: OutboxRelay) -> int:
        try:
            return await relay_once(self)
        finally:
            looked.set()

    monkeypatch.setattr(OutboxRelay, "relay_once", noted)
    settings = registry_settings.model_copy(update={"relay_idle_seconds": 60.0})
    app = create_app(settings)
    async with running(app), national_admin(app, settings) as admin:
        # The relay has looked, found nothing, and waits its minute.
        await asyncio.wait_for(looked.wait(), 10)
        summary = await import_file(admin, csv_bytes([row(house_code="24010100001")]))
        assert summary["households_imported"] == 1

        async def published() -> bool:
            rows = await registry_rows(settings, "SELECT sent_at FROM outbox")
            return bool(rows) and all(r["sent_at"] is not None for r in rows)

        await eventually(published, within=5, what="the import's event is published")


async def test_a_rolled_back_change_publishes_nothing(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    await write_events(sessionmaker, registry_settings.events_namespace, 2, fail=True)

    assert await make_relay().relay_once() == 0
    assert await registry_rows(registry_settings, "SELECT id FROM outbox") == []
    assert (
        await stream_messages(registry_settings.nats_url, registry_settings.events_namespace) == []
    )


async def test_two_relays_at_once_publish_every_event_exactly_once(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
) -> None:
    total = 300
    namespace = registry_settings.events_namespace
    ids = await write_events(sessionmaker, namespace, total)

    async def drain(relay: OutboxRelay) -> list[int]:
        batches = []
        while sent := await relay.relay_once():
            batches.append(sent)
        return batches

    first, second = await asyncio.gather(
        drain(make_relay(batch_size=20)), drain(make_relay(batch_size=20))
    )

    # Each relay selected only rows the other had not: together they sent each row once.
    assert sum(first) + sum(second) == total
    assert first and second, "both relays should have taken a share"
    assert await pending_ids(registry_settings) == set()
    messages = await stream_messages(registry_settings.nats_url, namespace)
    assert len(messages) == total
    assert {UUID(m.headers["Nats-Msg-Id"]) for m in messages if m.headers} == set(ids)


# NATS going away: a dedicated server per test, so the session's server is never stopped.


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[LocalNats]:
    server = LocalNats(tmp_path / "nats" / "store", port=free_port())
    yield server
    server.stop()


def national_admin(app: Any, settings: RegistrySettings) -> httpx.AsyncClient:
    caller = Caller(subject="admin@TH", role=Role.national_admin, area="TH")
    token = mint_internal_token(caller, settings.internal_key.get_secret_value())
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://registry",
        headers={IDENTITY_HEADER: token},
    )


async def registered_event(settings: RegistrySettings, household_id: str) -> dict[str, Any]:
    (row,) = await registry_rows(
        settings, "SELECT id, sent_at FROM outbox WHERE payload->>'subject' = $1", household_id
    )
    return dict(row)


@pytest.mark.parametrize(
    "nats_up_before", [True, False], ids=["nats-stops-after-start", "nats-down-from-start"]
)
async def test_a_write_succeeds_while_nats_is_down_and_its_event_follows_once_nats_is_back(
    registry_settings: RegistrySettings,
    own_nats: LocalNats,
    nats_up_before: bool,
) -> None:
    settings = registry_settings.model_copy(
        update={"nats_url": own_nats.url, "nats_connect_timeout_seconds": 0.5}
    )
    app = create_app(settings)
    if nats_up_before:
        own_nats.start()
    async with running(app), national_admin(app, settings) as admin:
        bus: Bus = app.state.bus
        if nats_up_before:
            await eventually(lambda: bus.connected, what="the relay connects to NATS")
            await asyncio.to_thread(own_nats.stop)

        response = await admin.post(
            "/v1/households", json={"area_code": "240101", "failed_indicators": ["2560-20"]}
        )
        assert response.status_code == 201, response.text
        household_id = response.json()["id"]
        event = await registered_event(settings, household_id)
        assert event["sent_at"] is None
        ready = await admin.get("/readyz")
        checks = ready.json()["checks"]
        assert (ready.status_code, checks["database"], checks["nats"]) == (503, "ok", "failing")

        await asyncio.to_thread(own_nats.start)

        async def sent() -> bool:
            return (await registered_event(settings, household_id))["sent_at"] is not None

        await eventually(sent, what="the outbox row is marked sent after NATS is back")

    messages = await stream_messages(own_nats.url, settings.events_namespace)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == [str(event["id"])]
    assert json.loads(messages[0].data or b"")["subject"] == household_id


async def test_events_flow_again_after_nats_restarts_with_an_empty_store(
    registry_settings: RegistrySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_relay: Callable[..., OutboxRelay],
    own_nats: LocalNats,
) -> None:
    namespace = registry_settings.events_namespace
    own_nats.start()
    relay = make_relay(nats_url=own_nats.url)
    await write_events(sessionmaker, namespace, 1)
    assert await relay.relay_once() == 1

    # A NATS server replaced by one without the old data (no volume, a new node): the
    # streams are gone and must be made again before anything can be published.
    await asyncio.to_thread(own_nats.stop)
    shutil.rmtree(own_nats.store_dir)
    await asyncio.to_thread(own_nats.start)
    (later,) = await write_events(sessionmaker, namespace, 1)

    stop = asyncio.Event()
    running_relay = asyncio.create_task(relay.run(stop))
    try:

        async def published() -> bool:
            return await pending_ids(registry_settings) == set()

        await eventually(published, what="the relay publishes to the recreated stream")
    finally:
        stop.set()
        relay.wake()
        await running_relay
    messages = await stream_messages(own_nats.url, namespace)
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == [str(later)]


async def test_a_service_stops_promptly_while_nats_is_down(
    registry_settings: RegistrySettings, own_nats: LocalNats
) -> None:
    settings = registry_settings.model_copy(
        update={"nats_url": own_nats.url, "nats_connect_timeout_seconds": 0.5}
    )
    app = create_app(settings)
    async with running(app), national_admin(app, settings) as admin:
        assert (await admin.get("/readyz")).status_code == 503  # the relay is retrying by now
        started = time.monotonic()
    assert time.monotonic() - started < 5


async def test_published_rows_are_pruned_after_the_retention_and_pending_ones_never(
    registry_settings: RegistrySettings, servers: Servers
) -> None:
    engine = create_engine(registry_settings)
    sessionmaker = create_sessionmaker(engine)
    bus = Bus(servers.nats.url, name="prune-test", namespace=registry_settings.events_namespace)
    relay = OutboxRelay(sessionmaker, bus)
    try:
        async with transaction(sessionmaker) as session:
            outbox = Outbox(session, source="test", namespace=registry_settings.events_namespace)
            for n in range(3):
                outbox.add(ThingHappened(n=n, note="old"), subject=str(n), area_code="24")
        assert await relay.relay_once() == 3
        await registry_rows(
            registry_settings,
            "UPDATE outbox SET sent_at = now() - interval '4 days' WHERE seq IN "
            "(SELECT seq FROM outbox ORDER BY seq LIMIT 2)",
        )
        async with transaction(sessionmaker) as session:
            Outbox(session, source="test").add(
                ThingHappened(n=9, note="new"), subject="9", area_code="24"
            )
        assert await relay.prune(timedelta(hours=72)) == 2
        rows = await registry_rows(
            registry_settings, "SELECT sent_at IS NULL AS pending FROM outbox"
        )
        assert sorted(r["pending"] for r in rows) == [False, True]
    finally:
        await bus.close()
        await engine.dispose()


async def test_the_prune_reads_only_the_published_rows_below_the_first_pending_one(
    registry_settings: RegistrySettings, servers: Servers
) -> None:
    """Relays publish in `seq` order, so the prune looks only below the first pending row and
    never reads the pending backlog; a row published out of that order waits until it is
    passed (then goes with the next prune)."""
    engine = create_engine(registry_settings)
    sessionmaker = create_sessionmaker(engine)
    bus = Bus(servers.nats.url, name="prune-test", namespace=registry_settings.events_namespace)
    relay = OutboxRelay(sessionmaker, bus)

    async def stage(*notes: str) -> None:
        async with transaction(sessionmaker) as session:
            outbox = Outbox(session, source="test", namespace=registry_settings.events_namespace)
            for n, note in enumerate(notes):
                outbox.add(ThingHappened(n=n, note=note), subject=note, area_code="24")

    async def left() -> dict[str, bool]:
        rows = await registry_rows(
            registry_settings,
            "SELECT payload->'data'->>'note' AS note, sent_at IS NULL AS pending FROM outbox",
        )
        return {r["note"]: r["pending"] for r in rows}

    try:
        await stage("a", "b", "c")
        assert await relay.relay_once() == 3
        await stage("d", "e", "f")
        # "f" published (by another replica, say) while "d" and "e" still wait; all old.
        await registry_rows(
            registry_settings,
            "UPDATE outbox SET sent_at = now() - interval '4 days'"
            " WHERE sent_at IS NOT NULL OR payload->'data'->>'note' = 'f'",
        )
        assert await relay.prune(timedelta(hours=72)) == 3
        assert await left() == {"d": True, "e": True, "f": False}
        await registry_rows(
            registry_settings,
            "UPDATE outbox SET sent_at = now() WHERE payload->'data'->>'note' IN ('d', 'e')",
        )
        assert await relay.prune(timedelta(hours=72)) == 1  # "f": nothing pending below it
        assert await left() == {"d": False, "e": False}
    finally:
        await bus.close()
        await engine.dispose()
