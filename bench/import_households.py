"""Importing the target list through the real import path against a bare COPY of the same file.

The import path: stream the file, parse it, encrypt and blind-index every citizen ID, COPY into
staging, check every row in SQL, move the valid rows into the indexed tables, write status,
audit and one outbox event per household, all in one transaction. The baseline: asyncpg's
`copy_to_table` of the same CSV file into one unindexed table of text columns, on the same
server in the same run. National size: `--households 1000000` (about 3.5 million persons).

A second reference, the floor this schema sets: the rows the import wrote (households, persons,
status history, audit trail, outbox events), copied with a binary COPY into the same tables of
a fresh database with the same migrations, so with the same indexes and foreign keys, and with
nothing parsed, encrypted or checked. With `--parts`, the same floor again with parts of the
schema taken away (the trigram index, the foreign keys, every index but the keys), each in a
fresh database of its own: what each part costs of the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg

from pinpoint.devservers import LocalPostgres, free_port
from services.registry.imports.csvformat import COLUMNS
from services.registry.imports.generate import generate_households
from services.registry.imports.jobs import Importer
from services.registry.migrations import SCRIPT_LOCATION
from services.registry.settings import RegistrySettings
from shared.auth import Caller, Role
from shared.db import create_engine
from shared.migrations import upgrade
from shared.pii import CitizenIdVault

CHUNK = 1024 * 1024

# What an import writes, table by table, in an order its foreign keys allow.
WRITTEN = ("household", "person", "status_change", "audit_entry", "outbox")

# Parts of the schema a floor can be measured without: each a query for the DDL that drops it
# from the written tables ($1).
_TRIGRAM = """SELECT format('DROP INDEX %s', indexrelid::regclass) FROM pg_index
WHERE indrelid = ANY($1::regclass[]) AND indexrelid = 'household_search'::regclass"""
_FOREIGN_KEYS = """SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname)
FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY($1::regclass[])"""
_NOT_KEYS = """SELECT format('DROP INDEX %s', indexrelid::regclass) FROM pg_index
WHERE indrelid = ANY($1::regclass[]) AND NOT indisunique"""
PARTS = {
    "without the trigram index": (_TRIGRAM,),
    "without the foreign keys": (_FOREIGN_KEYS,),
    "without either": (_TRIGRAM, _FOREIGN_KEYS),
    "primary and unique keys only": (_FOREIGN_KEYS, _NOT_KEYS),
}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _server_cpu(postgres: LocalPostgres) -> float:
    """CPU seconds the PostgreSQL server has used so far, its ended backends included.

    Other work shares the machine, so wall time alone says little; CPU time says what a step
    costs. Linux only (/proc).
    """
    tick = os.sysconf("SC_CLK_TCK")
    pid = (postgres.data_dir / "postmaster.pid").read_text().split()[0]

    def times(p: str) -> tuple[int, list[str]]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), fields  # parent, the fields after the name

    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, fields = times(entry.name)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if entry.name == pid:  # itself, and the children it has reaped
            total += sum(int(f) for f in fields[11:15])
        elif str(parent) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def bare_copy(dsn: str, path: Path) -> float:
    pg = await asyncpg.connect(dsn)
    try:
        columns = ", ".join(f"{c} text" for c in COLUMNS)
        await pg.execute(f"CREATE TABLE bare_copy ({columns})")
        started = time.perf_counter()
        await pg.copy_to_table("bare_copy", source=path, format="csv", header=True)
        return time.perf_counter() - started
    finally:
        await pg.close()


async def written_copy(
    postgres: LocalPostgres, database: str, spool: Path, without: Sequence[str] = ()
) -> tuple[dict[str, float], float]:
    """Seconds to COPY each table's rows from the imported database into a fresh one, migrated
    the same way and then without the parts `without` selects, and PostgreSQL's CPU seconds
    for those COPYs (not for reading the rows out)."""
    server = postgres.url.rsplit("/", 1)[0]
    url = f"{server}/{database}".replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade, SCRIPT_LOCATION, url)
    source = await asyncpg.connect(f"{server}/registry")
    target = await asyncpg.connect(f"{server}/{database}")
    seconds: dict[str, float] = {}
    cpu = 0.0
    try:
        for query in without:
            for (ddl,) in await target.fetch(query, list(WRITTEN)):
                await target.execute(ddl)
        for table in WRITTEN:
            columns = [
                r["attname"]
                for r in await source.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
                    " AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                    table,
                )
            ]
            dump = spool / f"{table}.copy"
            await source.copy_from_table(table, columns=columns, output=dump, format="binary")
            started, cpu_before = time.perf_counter(), _server_cpu(postgres)
            await target.copy_to_table(table, source=dump, columns=columns, format="binary")
            seconds[table] = time.perf_counter() - started
            cpu += _server_cpu(postgres) - cpu_before
            dump.unlink()
    finally:
        await source.close()
        await target.close()
    return seconds, cpu


async def real_import(settings: RegistrySettings, path: Path, *, trace: bool) -> dict[str, float]:
    engine = create_engine(settings)
    vault = CitizenIdVault(
        settings.pii_key.get_secret_value(), settings.blind_index_key.get_secret_value()
    )
    importer = Importer(engine, vault, namespace="")
    caller = Caller(subject="bench", role=Role.national_admin, area="TH")
    if trace:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        job_id = await importer.create(caller, path.name)
        await importer.stage(job_id, _chunks(path))
        staged = time.perf_counter()
        outcome = await importer.complete(job_id, caller, {})
        done = time.perf_counter()
        summary = await importer.summary(job_id, caller, limit=1)
    finally:
        await engine.dispose()
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else 0.0
    return {
        "stage": staged - started,
        "check_and_move": done - staged,
        "total": done - started,
        "rows": summary.rows_imported,
        "rejected": summary.rows_rejected,
        "households": summary.households_imported,
        "traced_peak_mib": traced,
        **{f"step {k}": v for k, v in outcome.timings.items()},
    }


async def main(households: int, seed: int, trace: bool, keep: Path | None, parts: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="pinpoint-bench-import-"))
    path = keep or root / "households.csv"
    if not path.exists():
        started = time.perf_counter()
        with path.open("w", encoding="utf-8") as f:
            for chunk in generate_households(households, seed=seed):
                f.write(chunk)
        print(
            f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f}s"
        )
    postgres = LocalPostgres(root / "pg", port=free_port())
    postgres.start()
    try:
        base = f"postgresql://postgres@127.0.0.1:{postgres.port}"
        database_url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/registry"
        await asyncio.to_thread(upgrade, SCRIPT_LOCATION, database_url)
        rss_before = _peak_rss_mib()

        cpu = _server_cpu(postgres)
        bare = await bare_copy(f"{base}/registry", path)
        bare_cpu = _server_cpu(postgres) - cpu
        settings = RegistrySettings(database_url=database_url, database_pool_size=4)
        cpu, own = _server_cpu(postgres), _own_cpu()
        result = await real_import(settings, path, trace=trace)
        server_cpu, own_cpu = _server_cpu(postgres) - cpu, _own_cpu() - own
        floor, floor_cpu = await written_copy(postgres, "floor", root)
        floors = {
            name: await written_copy(postgres, f"floor_{i}", root, without)
            for i, (name, without) in enumerate(PARTS.items() if parts else ())
        }
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)  # the server's files (and the generated file)

    rows = result["rows"] + result["rejected"]
    print(f"households imported      {result['households']:>12,.0f}")
    print(f"persons imported         {result['rows']:>12,.0f}   rejected {result['rejected']:,.0f}")
    print(f"bare COPY (baseline)     {bare:>11.1f}s   {rows / bare:>10,.0f} rows/s")
    print(
        f"import, total            {result['total']:>11.1f}s   "
        f"{rows / result['total']:>10,.0f} rows/s"
    )
    print(f"  parse+encrypt+stage    {result['stage']:>11.1f}s")
    print(f"  check+move+events      {result['check_and_move']:>11.1f}s")
    for key, seconds in result.items():
        if key.startswith("step "):
            print(f"    {key[5:]:<21}{seconds:>10.1f}s")
    floor_total = sum(floor.values())
    print(f"ratio import / bare COPY {result['total'] / bare:>11.2f}x")
    print(f"ratio import / floor     {result['total'] / floor_total:>11.2f}x")
    print(
        f"CPU: bare COPY {bare_cpu:.1f}s (PostgreSQL); import {own_cpu + server_cpu:.1f}s "
        f"({own_cpu:.1f}s this process, {server_cpu:.1f}s PostgreSQL)"
    )
    print("the import's rows, binary COPY into the indexed tables of a fresh database:")
    for name, (by_table, cpu) in {"the floor": (floor, floor_cpu), **floors}.items():
        total = sum(by_table.values())
        print(f"  {name}: {total:.1f}s, {total / bare:.2f}x the bare COPY, {cpu:.1f}s of CPU")
        print("    " + ", ".join(f"{table} {t:.1f}s" for table, t in by_table.items()))
    print(
        f"peak RSS of this process {_peak_rss_mib():>11.0f} MiB "
        f"(before the runs: {rss_before:.0f} MiB)"
    )
    if trace:
        print(f"tracemalloc peak         {result['traced_peak_mib']:>11.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2565)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    parser.add_argument("--file", type=Path, help="reuse (or keep) the generated file here")
    parser.add_argument(
        "--parts", action="store_true", help="also the floor without parts of the schema"
    )
    args = parser.parse_args()
    asyncio.run(main(args.households, args.seed, args.tracemalloc, args.file, args.parts))
