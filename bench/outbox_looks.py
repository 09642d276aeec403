"""The relay's looks at the outbox where they are slow, each against a baseline of the same run.

- Through a long backlog: a look from the first pending row (the baseline) against one past the
  last batch published. Rows marked sent stay in the pending index until a vacuum, so a look
  from the start steps over every row published since; the look past the last batch does not.
- While a transaction has written rows and not committed them (a bulk import's events), every
  look from the start steps over them and finds nothing: the relay's look, the backlog gauge's
  and the prune's (and the prune's look as it was, by the pending index), each against the same
  look before those rows were written; and the share of a core a running relay spends on its
  looks then, spaced as it spaces them, against looking at every idle tick. (A running relay
  holds its prune while its looks are that slow.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from bench.support import local_servers
from services.registry.migrations import SCRIPT_LOCATION
from shared import outbox
from shared.bus import Bus
from shared.db import create_sessionmaker
from shared.migrations import upgrade
from shared.outbox import BACKLOG_SQL, OutboxRelay

LOOK = (
    "SELECT seq, id, subject, payload::text, headers FROM outbox WHERE sent_at IS NULL {past}"
    " ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED"
)
BATCH = 500


# The prune's look before it read only the oldest rows: the first pending row, by the pending
# index.
OLD_PRUNE_LOOK = "SELECT min(seq) FROM outbox WHERE sent_at IS NULL"
# Long enough ago that the prune deletes nothing: its look is what is timed.
NOTHING_OLD_ENOUGH = timedelta(days=3650)


async def _look_ms(conn: asyncpg.Connection, past: str, tries: int = 7) -> float:
    return await _ms(conn, LOOK.format(past=past), tries)


async def _ms(conn: asyncpg.Connection, sql: str, tries: int = 5) -> float:
    """The median time of a statement, each try in a transaction of its own."""
    times = []
    for _ in range(tries):
        async with conn.transaction():
            started = time.perf_counter()
            await conn.fetch(sql)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _prune_ms(relay: OutboxRelay, tries: int = 5) -> float:
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        await relay.prune(NOTHING_OLD_ENOUGH)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _looks_ms(conn: asyncpg.Connection, relay: OutboxRelay) -> dict[str, float]:
    return {
        "relay_look_ms": round(await _look_ms(conn, "", tries=5), 2),
        "backlog_look_ms": round(await _ms(conn, BACKLOG_SQL), 2),
        "prune_ms": round(await _prune_ms(relay), 2),
        "prune_by_pending_index_ms": round(await _ms(conn, OLD_PRUNE_LOOK), 2),
    }


async def _share_looking(relay: OutboxRelay, seconds: float) -> float:
    """The share of the time a running relay spends in its looks and backlog measures."""
    spent = 0.0

    def timed(look: Callable[[], Awaitable[int]]) -> Callable[[], Coroutine[Any, Any, int]]:
        async def call() -> int:
            nonlocal spent
            started = time.perf_counter()
            try:
                return await look()
            finally:
                spent += time.perf_counter() - started

        return call

    relay.relay_once = timed(relay.relay_once)  # type: ignore[method-assign]
    relay.backlog = timed(relay.backlog)  # type: ignore[method-assign]
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    relay.wake()
    await task
    return spent / (time.perf_counter() - started)


async def _while_uncommitted(port: int, nats_url: str, rows: int) -> dict[str, object]:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/bench_import"
    await asyncio.to_thread(upgrade, SCRIPT_LOCATION, url)
    engine = create_async_engine(url)
    bus = Bus(nats_url, name="bench-looks", namespace="bench.")
    looker = await asyncpg.connect(url.replace("+asyncpg", ""))
    writer = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        # A service's outbox with a little history: rows published days ago, none pending, fewer
        # than the prune reads at a time (its look then goes on into the uncommitted rows).
        await looker.execute(
            "INSERT INTO outbox (id, subject, payload, sent_at) SELECT gen_random_uuid(),"
            " 'bench', '{}', now() - interval '4 days' FROM generate_series(1, 1000)"
        )
        await looker.execute("VACUUM ANALYZE outbox")
        relay = OutboxRelay(create_sessionmaker(engine), bus, idle_seconds=0.5)
        before = await _looks_ms(looker, relay)
        importing = writer.transaction()
        await importing.start()
        try:
            await writer.execute(
                "INSERT INTO outbox (id, subject, payload) SELECT gen_random_uuid(), 'bench',"
                " jsonb_build_object('pad', repeat('y', 600), 'n', g)"
                " FROM generate_series(1, $1::int) g",
                rows,
            )
            during = await _looks_ms(looker, relay)
            spaced = await _share_looking(OutboxRelay(create_sessionmaker(engine), bus), 30)
            spacing, outbox.EMPTY_LOOK_SPACING = outbox.EMPTY_LOOK_SPACING, 0.0
            try:
                every_tick = await _share_looking(OutboxRelay(create_sessionmaker(engine), bus), 30)
            finally:
                outbox.EMPTY_LOOK_SPACING = spacing
        finally:
            await importing.rollback()
    finally:
        await writer.close()
        await looker.close()
        await bus.close()
        await engine.dispose()
    return {
        "uncommitted_rows": rows,
        "before": before,
        "during": during,
        "during_vs_before": {k: round(during[k] / before[k], 1) for k in before},
        "relay_share_of_a_core_looking_spaced": round(spaced, 3),
        "relay_share_of_a_core_looking_every_tick": round(every_tick, 3),
    }


async def main(rows: int, marks: list[int]) -> None:
    with local_servers() as (_, postgres, broker):
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/bench"
        await asyncio.to_thread(upgrade, SCRIPT_LOCATION, url)
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await conn.execute(
                "INSERT INTO outbox (id, subject, payload) SELECT gen_random_uuid(), 'bench',"
                " jsonb_build_object('pad', repeat('y', 600), 'n', g)"
                " FROM generate_series(1, $1::int) g",
                rows,
            )
            await conn.execute("VACUUM ANALYZE outbox")
            seqs = [r[0] for r in await conn.fetch("SELECT seq FROM outbox ORDER BY seq")]
            figures, done = [], 0
            for mark in marks:
                # Marked sent as the relay marks them: a batch a transaction.
                for start in range(done, mark, BATCH):
                    await conn.execute(
                        "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])",
                        seqs[start : start + BATCH],
                    )
                done = mark
                from_start = await _look_ms(conn, "")
                past = await _look_ms(conn, f"AND seq > {seqs[mark - 1]}")
                figures.append(
                    {
                        "rows_sent": mark,
                        "look_from_start_ms": round(from_start, 2),
                        "look_past_last_batch_ms": round(past, 2),
                        "from_start_vs_past": round(from_start / past, 2),
                    }
                )
        finally:
            await conn.close()
        uncommitted = await _while_uncommitted(postgres.port, broker.url, rows)
    print(json.dumps({"rows": rows, "looks": figures, "uncommitted": uncommitted}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    marks = [m for m in (args.rows // 10, args.rows * 4 // 10, args.rows * 9 // 10) if m]
    asyncio.run(main(args.rows, marks))
