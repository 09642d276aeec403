"""`pinpoint bench`: the proof at a size (bench/proof.py), from a checkout of the repository."""

from __future__ import annotations

import signal
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

# The benchmarks live beside the packages in the repository; they are not installed with them.
REPOSITORY = Path(__file__).resolve().parents[1]


class ProofSize(StrEnum):
    small = "small"
    tenth = "tenth"
    national = "national"


def bench(
    size: Annotated[
        ProofSize,
        typer.Option(
            help="small: minutes; tenth: 100,000 households; national: 1,000,000 households"
        ),
    ] = ProofSize.small,
    out: Annotated[
        Path, typer.Option(help="Where report.md, latency_lag.svg and results.json go")
    ] = Path("proof-report"),
) -> None:
    """Run the proof: its own servers and services, a data set, the load mix, lag and totals;
    writes a Markdown report with the figures and a plot of latency and lag over time."""
    if not (REPOSITORY / "bench" / "proof.py").exists():
        raise typer.BadParameter("run it from a checkout of the repository: bench/ is not here")
    command = [
        *(sys.executable, "-m", "bench.proof"),
        *("--size", size.value, "--out", str(out.resolve())),
    ]
    # From the repository's root, where `bench` imports; `out` as the caller meant it.
    proof = subprocess.Popen(command, cwd=REPOSITORY)  # noqa: S603 - our own module
    # Stopped, it stops the proof, which stops the servers and services it started, and waits
    # for it to have done so (Ctrl-C reaches both: the proof's own process group).
    told = signal.signal(signal.SIGTERM, lambda *_: proof.terminate())
    try:
        while True:
            try:
                returncode = proof.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, told)
    raise typer.Exit(returncode)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
