"""The relay's look for pending outbox rows through a long backlog: from the first pending row
(the baseline) against past the last batch published, in the same run and database.

Rows marked sent stay in the pending index until a vacuum, so a look from the start steps over
every row published since; the look past the last batch does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import asyncpg

from bench.support import local_servers
from services.registry.migrations import SCRIPT_LOCATION
from shared.migrations import upgrade

LOOK = (
    "SELECT seq, id, subject, payload::text, headers FROM outbox WHERE sent_at IS NULL {past}"
    " ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED"
)
BATCH = 500


async def _look_ms(conn: asyncpg.Connection, past: str, tries: int = 7) -> float:
    times = []
    for _ in range(tries):
        async with conn.transaction():
            started = time.perf_counter()
            await conn.fetch(LOOK.format(past=past))
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main(rows: int, marks: list[int]) -> None:
    with local_servers() as (_, postgres, _broker):
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
    print(json.dumps({"rows": rows, "looks": figures}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    marks = [m for m in (args.rows // 10, args.rows * 4 // 10, args.rows * 9 // 10) if m]
    asyncio.run(main(args.rows, marks))
