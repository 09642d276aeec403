"""What the benchmarks share: percentiles, and a service run in a child process."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from pinpoint.devservers import LocalNats, LocalPostgres, free_port, stop_process, wait_for_port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def delays_ms(seconds: list[float], *quantiles: float) -> dict[str, float]:
    """Median and the given percentiles (p99 unless told) of durations, in milliseconds."""
    figures = {"median_ms": round(statistics.median(seconds) * 1000, 2)}
    for q in quantiles or (0.99,):
        figures[f"p{round(q * 100)}_ms"] = round(percentile(seconds, q) * 1000, 2)
    return figures


COMMAND = (sys.executable, "-m", "pinpoint", "serve")


@dataclass
class Served:
    """One service run by uvicorn in a child process, as `pinpoint serve` runs it."""

    url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far (Linux `/proc`; NaN elsewhere)."""
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux `/proc`; NaN elsewhere).

    Unlike wall-clock latency, CPU per request hardly moves when other work shares the machine.
    """
    fields = _stat(pid)
    if fields is None:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of `/proc/PID/stat` after the name (None if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces


def tree_cpu_seconds(pids: dict[str, int], alone: frozenset[str] = frozenset()) -> dict[str, float]:
    """CPU each process has used so far with all its children, the ended ones included (a
    PostgreSQL server's backends come and go), or without them for the names in `alone`: one
    look through `/proc` for all of them."""
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        parents[int(entry.name)] = int(fields[1])
        # utime + stime, and cutime + cstime: the children it has waited for
        spent[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)

    def total(pid: int) -> float:
        return spent.get(pid, 0.0) + sum(total(child) for child in children.get(pid, []))

    return {
        name: spent.get(pid, 0.0) if name in alone else total(pid) for name, pid in pids.items()
    }


@dataclass
class CpuLedger:
    """CPU seconds each named process and its children spent in each step of a run, and the
    wall-clock seconds of the step: which part of the system a step's time went to."""

    pids: dict[str, int]
    # Counted without their children: the runner's children are the services, counted apart.
    alone: frozenset[str] = frozenset()
    steps: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._last = tree_cpu_seconds(self.pids, self.alone)
        self._at = time.perf_counter()

    def step(self, name: str) -> None:
        """Charge what was spent since the last step to `name` (added up if it comes again)."""
        now, at = tree_cpu_seconds(self.pids, self.alone), time.perf_counter()
        row = self.steps.setdefault(name, dict.fromkeys([*self.pids, "wall"], 0.0))
        for part in self.pids:
            row[part] += now[part] - self._last[part]
        row["wall"] += at - self._at
        self._last, self._at = now, at


STATEMENTS = """
SELECT d.datname AS database, s.queryid, left(s.query, 200) AS query, s.calls,
       s.total_exec_time + s.total_plan_time AS ms
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname <> current_database()  -- the ledger's own looks"""


@dataclass
class StatementLedger:
    """PostgreSQL's time by statement in each step of a run (`pg_stat_statements`, which the
    server must preload): planning and execution, waits for locks included."""

    dsn: str  # a database of the server the system does not use: the view covers them all
    top: int = 6
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def start(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self._last = await self._look(connection)
        finally:
            await connection.close()

    async def step(self, name: str) -> None:
        """The statements that took the most time since the last step, charged to `name`."""
        connection = await asyncpg.connect(self.dsn)
        try:
            now = await self._look(connection)
        finally:
            await connection.close()
        spent = []
        for key, row in now.items():
            before = self._last.get(key, {"calls": 0, "ms": 0.0})
            if row["ms"] > before["ms"]:
                spent.append(
                    row | {"calls": row["calls"] - before["calls"], "ms": row["ms"] - before["ms"]}
                )
        spent.sort(key=lambda row: -row["ms"])
        self.steps[name] = [
            {
                "database": row["database"],
                "query": " ".join(row["query"].split()),
                "calls": row["calls"],
                "seconds": round(row["ms"] / 1000, 2),
            }
            for row in spent[: self.top]
        ]
        self.steps[name].append(
            {
                "database": "",
                "query": "(all statements)",
                "calls": sum(r["calls"] for r in spent),
                "seconds": round(sum(r["ms"] for r in spent) / 1000, 2),
            }
        )
        self._last = now

    @staticmethod
    async def _look(connection: asyncpg.Connection) -> dict[tuple[str, int], dict[str, Any]]:
        return {
            (row["database"], row["queryid"]): dict(row)
            for row in await connection.fetch(STATEMENTS)
        }


def serve(service: str, env: dict[str, str], log: Path) -> Served:
    """`pinpoint serve SERVICE` on a free port with these settings; its output goes to `log`."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*COMMAND, service, "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "PINPOINT_LOG_LEVEL": "WARNING", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, timeout=60)
    return Served(f"http://127.0.0.1:{port}", process)


@contextmanager
def local_servers(
    prefix: str = "pinpoint-bench-",
) -> Iterator[tuple[Path, LocalPostgres, LocalNats]]:
    """A PostgreSQL and a NATS of the benchmark's own in a temporary folder (also given, for
    logs and files), stopped and removed when it ends."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = LocalPostgres(root / "pg", port=free_port())
    broker = LocalNats(root / "nats" / "store", port=free_port())
    try:
        postgres.start()
        broker.start()
        yield root, postgres, broker
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)  # the servers' files
