"""The proof runner end to end at a tiny size: real servers and services, a report, a plot,
and analytics' totals equal to the registry's and logbook's records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_proof_at_tiny_size_writes_report_and_plot_with_equal_totals(tmp_path: Path) -> None:
    out = tmp_path / "proof"
    finished = subprocess.run(
        [sys.executable, "-m", "bench.proof", "--size", "tiny", "--out", str(out)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert results["totals"]["equal"], results["totals"]["mismatches"]
    assert results["totals"]["areas_compared"] > 1
    assert results["load"]["requests"] > 0
    # The history came in through the logbook's history import, every entry of it.
    assert results["data"]["history"]["entries"] == 600
    assert sum(results["data"]["history"]["kinds"].values()) == 600
    assert results["load"]["errors"] == 0, results["load"]["error_examples"]
    assert set(results["baseline"]) == {
        "GET /v1/households?area_code=",
        "GET /v1/progress/{area}",
        "GET /v1/progress/{area}/children",
    }
    report = (out / "report.md").read_text()
    # Every step's CPU is charged to the processes that spent it: the history's events are
    # applied by the services' consumers and PostgreSQL, the load is served by the gateway.
    cpu = results["cpu_s"]
    assert cpu["catch_up_after_history"]["postgres"] + cpu["history"]["postgres"] > 0
    assert cpu["load"]["gateway"] > 0 and cpu["load"]["runner"] > 0
    assert "| catch up after history |" in report
    # And PostgreSQL's time to the statements that took it: under the load, the services'
    # statements, hundreds of calls in all (the last row).
    *top, every = results["statements"]["load"]
    assert every["query"] == "(all statements)" and every["calls"] > 100
    assert top and {row["database"] for row in top} <= {"registry", "logbook", "analytics"}
    assert "| load | " in report.split("Where PostgreSQL's time went")[1]
    assert "**Result: all equal**" in report
    assert "| **all** |" in report
    svg = (out / "latency_lag.svg").read_text()
    assert "<svg" in svg and "</svg>" in svg
