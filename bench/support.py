"""What the benchmarks share: percentiles, and a service run in a child process."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
