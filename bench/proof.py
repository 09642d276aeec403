"""The proof at a size: a data set through the real paths, a load mix through the gateway, lag.

`python -m bench.proof --size small --out DIR` (or `pinpoint bench --size small --out DIR`):

1. starts its own PostgreSQL and NATS, migrates, and serves the registry, logbook, analytics and
   gateway in child processes (`pinpoint serve`, outbox relays and consumers on);
2. loads a data set through the real paths: a seeded target list (the import generator) uploaded
   as CSV through the gateway, a mentor team in each sub-district and every household assigned
   to it through the API (up to 1,000 a request), then a logbook history over three years
   uploaded to the logbook's history import through the gateway;
3. drives the load mix (bench/proof_load.py `MIX`) through the gateway from this process,
   bounded in count and in time, per route: throughput and latency (median, p95, p99);
4. measures, in the same run, each read straight to its owning service (internal token) and
   the CPU each process spends per request, and prints the ratios;
5. samples every second the outbox backlogs, the consumers' lag and the request latency, times
   how long the consumers take to catch up after the load, then checks every total analytics
   shows against totals computed from the registry's and the logbook's own tables;
6. writes DIR/report.md, DIR/latency_lag.svg, DIR/results.json and DIR/samples.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.proof_load import (
    ANALYST,
    MIX,
    DataSet,
    Load,
    Recorder,
    Tokens,
    Writer,
    baseline,
    bounded,
    import_history,
    import_households,
    in_progress_households,
    list_households,
    load_menus,
    teams_and_assignments,
    write_history_file,
)
from bench.proof_report import write_outputs
from bench.proof_sample import Sampler
from bench.proof_totals import compare, expected_totals
from bench.support import CpuLedger, Served, StatementLedger, serve
from pinpoint.devservers import LocalNats, LocalPostgres, free_port
from services.analytics.migrations import SCRIPT_LOCATION as ANALYTICS_MIGRATIONS
from services.logbook.migrations import SCRIPT_LOCATION as LOGBOOK_MIGRATIONS
from services.registry.imports.generate import generate_households
from services.registry.migrations import SCRIPT_LOCATION as REGISTRY_MIGRATIONS
from shared.migrations import upgrade

SEED = 2565


@dataclass(frozen=True)
class Size:
    name: str
    households: int
    history: int  # logbook entries over three years, through the logbook's history import
    history_within: float  # seconds the history import may take
    load_requests: int
    load_seconds: float
    concurrency: int
    baseline_requests: int  # per read route and path
    sampled_districts: int  # whose sub-districts the totals check opens
    catch_up_within: float
    # One target list per province, as provinces upload theirs (the whole country in one
    # file when empty): households are spread as they are in a province, many to a team.
    provinces: tuple[str, ...] = ()


SIZES = {
    # For the test: everything once, in about a minute.
    "tiny": Size("tiny", 60, 600, 120, 200, 8, 8, 16, 3, 120, ("24",)),
    # Chiang Mai, Nakhon Ratchasima, Chachoengsao and Songkhla: north, north-east, east, south.
    "small": Size("small", 1000, 10_000, 600, 6000, 60, 16, 100, 40, 300, ("50", "30", "24", "90")),
    # A tenth of the country, to time each step and see how it grows on the way to national.
    "tenth": Size("tenth", 100_000, 1_000_000, 1200, 20_000, 180, 32, 300, 60, 3600),
    # The national data set: 1,000,000 households (about 3.5 million persons) and 10,000,000
    # logbook entries over three years. Ten minutes of load: in a national run of fifteen, the
    # rate and the per-second median and p95 of each five minutes were within 3.1% of the whole
    # run's.
    "national": Size("national", 1_000_000, 10_000_000, 7200, 200_000, 600, 32, 1000, 100, 7200),
}


def _log(message: str) -> None:
    print(f"[proof {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _database(port: int, name: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://postgres@127.0.0.1:{port}/{name}"


def start_services(port: int, nats_url: str, logs: Path) -> dict[str, Served]:
    """Registry, logbook, analytics and the gateway in front of them, each its own process."""

    def env(name: str) -> dict[str, str]:
        return {
            "PINPOINT_DATABASE_URL": _database(port, name),
            "PINPOINT_NATS_URL": nats_url,
            "PINPOINT_SERVICE_NAME": name,
        }

    served: dict[str, Served] = {}
    try:
        served["registry"] = serve("registry", env("registry"), logs / "registry.log")
        urls = {"PINPOINT_REGISTRY_URL": served["registry"].url}
        served["logbook"] = serve("logbook", env("logbook") | urls, logs / "logbook.log")
        served["analytics"] = serve("analytics", env("analytics"), logs / "analytics.log")
        urls |= {
            "PINPOINT_LOGBOOK_URL": served["logbook"].url,
            "PINPOINT_ANALYTICS_URL": served["analytics"].url,
            # The proof measures the system, not the per-client limit: let every request in.
            "PINPOINT_RATE_LIMIT_PER_SECOND": "1000000",
            "PINPOINT_RATE_LIMIT_BURST": "1000000",
            "PINPOINT_SERVICE_NAME": "gateway",
        }
        served["gateway"] = serve("gateway", urls, logs / "gateway.log")
    except BaseException:
        for process in served.values():
            process.stop()
        raise
    return served


async def _until(check: Any, what: str, within: float) -> float:
    started = time.perf_counter()
    while True:
        looked = time.perf_counter()
        if await check():
            return time.perf_counter() - started
        if looked - started > within:
            raise TimeoutError(f"not within {within}s: {what}")
        # A check that takes long (a count over a million rows) waits ten times as long
        # before the next one: the proof's looks take at most a tenth of what they watch.
        await asyncio.sleep(max(0.2, 10 * (time.perf_counter() - looked)))


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


def _areas(data: DataSet) -> dict[str, list[str]]:
    codes = [h.area_code for h in data.households]
    return {
        level: sorted({c[:n] for c in codes})
        for level, n in (("province", 2), ("district", 4), ("subdistrict", 6))
    }


def _route_figures(recorder: Recorder, elapsed: float) -> dict[str, Any]:
    figures = {}
    for route in MIX:
        samples = [s for s in recorder.samples if s.route == route]
        ok = sorted(s.seconds for s in samples if s.ok)
        figures[route] = {
            "requests": len(samples),
            "errors": len(samples) - len(ok),
            "per_s": round(len(samples) / elapsed, 1),
            **_percentiles(ok),
        }
    return figures


def _percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"median_ms": None, "p95_ms": None, "p99_ms": None}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 1)

    return {"median_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def _baseline_figures(measured: dict[str, Any], requests: int) -> dict[str, Any]:
    figures = {}
    for route, m in measured.items():
        gateway = _percentiles(m["seconds"]["gateway"])
        direct = _percentiles(m["seconds"]["direct"])
        n = {path: len(s) for path, s in m["seconds"].items()}
        cpu = m["cpu_seconds"]
        gateway_cpu = (cpu["gateway"]["gateway"] + cpu["gateway"]["service"]) * 1000 / n["gateway"]
        direct_cpu = cpu["direct"]["service"] * 1000 / n["direct"]
        figures[route] = {
            "service": m["service"],
            "gateway": gateway,
            "direct": direct,
            "median_ratio": _ratio(gateway["median_ms"], direct["median_ms"]),
            "p99_ratio": _ratio(gateway["p99_ms"], direct["p99_ms"]),
            "cpu_ms_gateway_path": round(gateway_cpu, 2),
            "cpu_ms_of_which_gateway": round(cpu["gateway"]["gateway"] * 1000 / n["gateway"], 2),
            "cpu_ms_direct": round(direct_cpu, 2),
            "cpu_ratio": _ratio(gateway_cpu, direct_cpu),
        }
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _write_csv(path: Path, households: int, seed: int, area: str | None) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        for chunk in generate_households(households, seed=seed, area=area):
            f.write(chunk)


async def run(size: Size, out: Path) -> dict[str, Any]:
    logs = out / "logs"  # made by `main`, with `out`
    root = Path(tempfile.mkdtemp(prefix="pinpoint-proof-"))
    begun = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    phases: dict[str, float] = {}
    postgres = LocalPostgres(root / "pg", port=free_port(), statement_stats=True)
    broker = LocalNats(root / "nats" / "store", port=free_port())
    served: dict[str, Served] = {}
    try:
        postgres.start()
        broker.start()
        for name, migrations in (
            ("registry", REGISTRY_MIGRATIONS),
            ("logbook", LOGBOOK_MIGRATIONS),
            ("analytics", ANALYTICS_MIGRATIONS),
        ):
            await asyncio.to_thread(upgrade, migrations, _database(postgres.port, name))
        served = start_services(postgres.port, broker.url, logs)
        phases["start_and_migrate"] = time.perf_counter() - begun
        _log(f"servers and services up in {phases['start_and_migrate']:.1f}s")
        assert broker.process is not None
        cpu = CpuLedger(
            {name: s.process.pid for name, s in served.items()}
            | {"postgres": postgres.pid, "nats": broker.process.pid, "runner": os.getpid()},
            alone=frozenset({"runner"}),  # the services and NATS are the runner's children
        )
        statements = StatementLedger(_database(postgres.port, "postgres", "postgresql"))
        await statements.start()

        async def step(name: str) -> None:
            cpu.step(name)
            await statements.step(name)

        results = await _proof(size, root, postgres.port, broker.url, served, phases, step)
        results["cpu_s"] = {
            name: {part: round(seconds, 1) for part, seconds in row.items()}
            for name, row in cpu.steps.items()
        }
        results["statements"] = statements.steps
    finally:
        for process in reversed(list(served.values())):
            process.stop()
        broker.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
    results["load_average_before"] = load_before
    results["phases_s"] = {k: round(v, 1) for k, v in phases.items()}
    results["total_s"] = round(time.perf_counter() - begun, 1)
    write_outputs(out, results)
    return results


async def _proof(
    size: Size,
    root: Path,
    port: int,
    nats_url: str,
    served: dict[str, Served],
    phases: dict[str, float],
    step: Callable[[str], Awaitable[None]],
) -> dict[str, Any]:
    """The run itself; `step(name)` charges what each process and each SQL statement spent
    since the last step to the step just done."""
    tokens = Tokens()
    limits = httpx.Limits(
        max_connections=size.concurrency * 2,
        max_keepalive_connections=size.concurrency * 2,
        # Below uvicorn's 5 s keep-alive, as the gateway's upstream pool: a connection idle
        # through a long catch-up was otherwise taken just as the service closed it.
        keepalive_expiry=2.0,
    )
    clients = {
        name: httpx.AsyncClient(base_url=s.url, limits=limits, timeout=60)
        for name, s in served.items()
    }
    gateway = clients["gateway"]
    try:
        for name, client in clients.items():
            await _until(lambda c=client: _ready(c), f"{name} ready", 120)

        counted = ("files", "seconds", "rows_read", "households_imported", "rejected")
        imported: dict[str, float] = dict.fromkeys(counted, 0)
        phases["generate_csv"] = 0.0
        areas: list[str | None] = list(size.provinces) or [None]
        for n, area in enumerate(areas):
            started = time.perf_counter()
            csv_file = root / f"households-{area or 'TH'}.csv"
            count = size.households // len(areas) + (n < size.households % len(areas))
            await asyncio.to_thread(_write_csv, csv_file, count, SEED + n, area)
            phases["generate_csv"] += time.perf_counter() - started
            await step("generate_csv")
            one = await import_households(gateway, tokens, csv_file, within=7200)
            await step("import")
            imported["files"] += 1
            for key in counted[1:]:
                imported[key] += one[key]
        phases["import"] = imported["seconds"]
        _log(f"imported {imported['households_imported']} households in {imported['seconds']:.1f}s")

        data = DataSet()
        started = time.perf_counter()
        data.households = await list_households(gateway, tokens)
        if len(data.households) != imported["households_imported"]:
            raise RuntimeError(
                f"listed {len(data.households)} households"
                f" of {imported['households_imported']:.0f} imported"
            )
        data.figures["list_seconds"] = round(time.perf_counter() - started, 1)
        data.figures["areas"] = _areas(data)
        await teams_and_assignments(gateway, tokens, data, size.concurrency)
        await load_menus(gateway, tokens, data)
        logbook_dsn = _database(port, "logbook", "postgresql")
        registry_dsn = _database(port, "registry", "postgresql")
        conn = await asyncpg.connect(logbook_dsn)
        try:

            async def logbook_knows() -> bool:
                # A household the logbook knows without its team stops the scan early; the
                # count (a read of every row) runs once none is left.
                if await conn.fetchval(
                    "SELECT EXISTS (SELECT FROM household_ref WHERE mentor_team_id IS NULL)"
                ):
                    return False
                known = await conn.fetchval(
                    "SELECT count(*) FROM household_ref WHERE mentor_team_id IS NOT NULL"
                )
                return bool(known == len(data.households))

            waited = time.perf_counter()
            await _until(logbook_knows, "the logbook knowing every household's team", 600)
            data.figures["logbook_wait_seconds"] = round(time.perf_counter() - waited, 1)
        finally:
            await conn.close()
        phases["teams_and_assignments"] = time.perf_counter() - started
        await step("teams_and_assignments")
        _log(
            f"{data.figures['teams']} teams, households assigned"
            f" in {phases['teams_and_assignments']:.1f}s"
        )

        recorder = Recorder()
        writer = Writer(gateway, tokens, data)
        async with Sampler(registry_dsn, logbook_dsn, nats_url, recorder) as sampler:
            started = time.perf_counter()
            history_file = root / "history.csv"
            await asyncio.to_thread(write_history_file, data, history_file, size.history, SEED)
            phases["generate_history"] = time.perf_counter() - started
            await step("generate_history")
            sampler.mark("history")
            history = await import_history(gateway, tokens, history_file, size.history_within)
            phases["history"] = history["seconds"]
            await step("history")
            caught_after_history = await sampler.until_caught_up(size.catch_up_within)
            phases["catch_up_after_history"] = caught_after_history
            await step("catch_up_after_history")
            _log(f"history: {history['entries']} entries at {history['per_s']:.0f}/s")

            graduation = await in_progress_households(
                gateway, tokens, max(10, len(data.households) // 10)
            )
            load = Load(writer, recorder, graduation, random.Random(SEED))
            cpu_before = {name: s.cpu_seconds() for name, s in served.items()}
            sampler.mark("load_start")
            done, elapsed = await bounded(
                size.load_requests, size.concurrency, size.load_seconds, load.one
            )
            sampler.mark("load_end")
            cpu_used = {name: s.cpu_seconds() - cpu_before[name] for name, s in served.items()}
            phases["load"] = elapsed
            await step("load")
            _log(f"load: {done} requests in {elapsed:.1f}s")
            catch_up = await sampler.until_caught_up(size.catch_up_within)
            sampler.mark("caught_up")
            phases["catch_up_after_load"] = catch_up
            await step("catch_up_after_load")
            _log(f"caught up {catch_up:.1f}s after the load")

            started = time.perf_counter()
            sampler.mark("baseline_start")
            measured = await baseline(
                gateway,
                {"registry": clients["registry"], "analytics": clients["analytics"]},
                tokens,
                data,
                {name: s.cpu_seconds for name, s in served.items()},
                requests=size.baseline_requests,
                rounds=4,
                seed=SEED,
            )
            sampler.mark("baseline_end")
            phases["baseline"] = time.perf_counter() - started
            await step("baseline")
            await asyncio.sleep(1.5)  # a last sample or two of the quiet system
        started = time.perf_counter()
        expected = await expected_totals(registry_dsn, logbook_dsn)
        clients["analytics"].headers.update(tokens.internal(ANALYST))
        totals = await compare(
            clients["analytics"], expected, sampled_districts=size.sampled_districts
        )
        phases["totals_check"] = time.perf_counter() - started
        await step("totals_check")
        _log(f"totals: {totals['areas_compared']} areas, equal: {totals['equal']}")
    finally:
        for client in clients.values():
            await client.aclose()

    ok = [s for s in recorder.samples if s.ok]
    return {
        "size": asdict(size),
        "seed": SEED,
        "data": {
            "households": len(data.households),
            "import": imported,
            "list_seconds": data.figures["list_seconds"],
            "teams": data.figures["teams"],
            "teams_seconds": round(data.figures["teams_seconds"], 1),
            "assignments_seconds": round(data.figures["assignments_seconds"], 1),
            "logbook_wait_seconds": data.figures["logbook_wait_seconds"],
            "provinces": len(data.figures["areas"]["province"]),
            "districts": len(data.figures["areas"]["district"]),
            "subdistricts": len(data.figures["areas"]["subdistrict"]),
            "history": history,
            "catch_up_after_history_s": round(caught_after_history, 2),
        },
        "load": {
            "requests": done,
            "seconds": round(elapsed, 1),
            "per_s": round(done / elapsed, 1),
            "errors": len(recorder.samples) - len(ok),
            "error_examples": recorder.errors,
            "all_routes": _percentiles([s.seconds for s in ok]),
            "routes": _route_figures(recorder, elapsed),
            "cpu_ms_per_request": {
                name: round(seconds * 1000 / max(done, 1), 2) for name, seconds in cpu_used.items()
            },
            "catch_up_s": round(catch_up, 2),
        },
        "baseline": _baseline_figures(measured, size.baseline_requests),
        "samples": sampler.rows,
        "marks": sampler.marks,
        "totals": totals,
    }


def _interrupt(signum: int, frame: object) -> None:
    # Once: a second signal must not break off the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupted_by_kill() -> None:
    """`kill` (SIGTERM), and Ctrl-C even when started in the background (where SIGINT comes
    ignored), stop the run as an interrupt does: the servers and services it started stop with
    it and their files go. Killed outright they were left running, holding tens of GB at
    national size."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--out", type=Path, default=Path("proof-report"))
    args = parser.parse_args()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    _interrupted_by_kill()
    results = asyncio.run(run(SIZES[args.size], args.out))
    summary = {
        "report": str(args.out / "report.md"),
        "total_s": results["total_s"],
        "load_per_s": results["load"]["per_s"],
        "catch_up_s": results["load"]["catch_up_s"],
        "totals_equal": results["totals"]["equal"],
    }
    print(json.dumps(summary, indent=2))
    if not results["totals"]["equal"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
