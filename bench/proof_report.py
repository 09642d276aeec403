"""The proof's outputs: report.md (figures in tables), latency_lag.svg, results.json, samples."""

from __future__ import annotations

import csv
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.proof_load import MIX


def machine() -> dict[str, Any]:
    """Cores, memory, processor and how busy the machine was (Linux /proc)."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
        info["memory_gib"] = round(kib / 1024**2, 1)
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.machine(),
        )
    except OSError:
        pass
    return info


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"×{value:.2f}"


def _during(rows: list[dict[str, Any]], marks: dict[str, float], key: str) -> float:
    start, end = marks.get("load_start", 0.0), marks.get("caught_up", float("inf"))
    return max((r[key] or 0 for r in rows if start <= r["t"] <= end), default=0)


def _cpu_table(steps: dict[str, dict[str, float]], cores: int) -> list[str]:
    """CPU seconds of each process (with its children) in each step: where a step's time went."""
    if not steps:
        return []
    parts = [p for p in next(iter(steps.values())) if p != "wall"]
    lines = [
        "Where the CPU went, step by step: CPU seconds of each process with its children"
        f" (PostgreSQL's backends, NATS, the runner that generates files and drives the load),"
        f" and how busy the {cores} cores were (all CPU over wall-clock time × cores):",
        "",
        f"| step | wall s | {' | '.join(parts)} | all | busy |",
        f"| --- | ---: | {' | '.join('---:' for _ in parts)} | ---: | ---: |",
    ]
    for step, row in steps.items():
        spent = sum(row[p] for p in parts)
        busy = spent / (row["wall"] * cores) if row["wall"] else 0.0
        lines.append(
            f"| {step.replace('_', ' ')} | {row['wall']:.1f} |"
            f" {' | '.join(f'{row[p]:.1f}' for p in parts)} | {spent:.1f} | {busy:.0%} |"
        )
    return [*lines, ""]


def _statements_table(steps: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The SQL statements PostgreSQL spent the most time in, step by step."""
    if not steps:
        return []
    lines = [
        "Where PostgreSQL's time went, step by step: the statements it spent the most time in"
        " (`pg_stat_statements`: planning and execution, waits included), and all of them:",
        "",
        "| step | database | statement | calls | seconds |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for step, rows in steps.items():
        for n, row in enumerate(rows):
            query = row["query"].replace("|", "\\|")
            lines.append(
                f"| {step.replace('_', ' ') if n == 0 else ''} | {row['database']} |"
                f" `{query[:120]}` | {row['calls']:,} | {row['seconds']} |"
                if row["database"]
                else f"| | | {query} | {row['calls']:,} | {row['seconds']} |"
            )
    return [*lines, ""]


# A country's target households (DESIGN.md §7): at this size the rates are the national ones.
NATIONAL_HOUSEHOLDS = 1_000_000


def report(results: dict[str, Any]) -> str:
    m, size, data, load = results["machine"], results["size"], results["data"], results["load"]
    phases, totals, rows, marks = (
        results["phases_s"],
        results["totals"],
        results["samples"],
        results["marks"],
    )
    where = (
        f"one file for each of the provinces {', '.join(size['provinces'])}"
        if size["provinces"]
        else "one file for the whole country"
    )
    lines = [
        f"# pinpoint proof at {size['name']} size",
        "",
        f"Run {m['date']} by `python -m bench.proof --size {size['name']}` on {m['cores']} cores"
        f" ({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB memory, Python {m['python']};"
        f" load average {results['load_average_before']} before the run and"
        f" {m['load_average_1m']} after it. The machine is shared with other work, so wall-clock"
        " figures are noisy: compare the ratios against the baselines of the same run, and the"
        " CPU per request, which moves far less.",
        "",
        "PostgreSQL (durable) and NATS JetStream run on this machine; registry, logbook,"
        " analytics and gateway each run in their own process (`pinpoint serve`, outbox relays"
        " and consumers on); the load is driven from the runner, a fifth process.",
        "",
        "## Sizes and durations",
        "",
        "| what | figure |",
        "| --- | --- |",
        f"| households (imported through the gateway) | {data['households']:,} |",
        f"| CSV rows (persons) | {data['import']['rows_read']:,} |",
        f"| provinces / districts / sub-districts with households | {data['provinces']} /"
        f" {data['districts']} / {data['subdistricts']} |",
        f"| mentor teams (one per sub-district, via the API) | {data['teams']:,} |",
        f"| logbook history (the history import) | {data['history']['entries']:,} entries |",
        f"| load bound | {size['load_requests']:,} requests or {size['load_seconds']:.0f} s,"
        f" {size['concurrency']} clients |",
        f"| load done | {load['requests']:,} requests in {load['seconds']} s |",
        f"| whole run | {results['total_s']} s |",
        "",
        "| phase | seconds |",
        "| --- | --- |",
        *(f"| {name.replace('_', ' ')} | {seconds} |" for name, seconds in phases.items()),
        "",
        *_cpu_table(results.get("cpu_s", {}), m["cores"]),
        *_statements_table(results.get("statements", {})),
        "## The data set, through the real paths",
        "",
        f"- Import: seeded target lists (`pinpoint generate households`, seed"
        f" {results['seed']} and on), {where}, each uploaded as CSV to"
        f" `POST /v1/imports/households` through the gateway:"
        f" {data['import']['households_imported']:,} households"
        f" ({data['import']['rows_read']:,} rows) in {data['import']['seconds']:.1f} s"
        f" ({data['import']['rows_read'] / data['import']['seconds']:,.0f} rows/s),"
        f" {data['import']['rejected']} rejected.",
        f"- Mentor teams: every household listed with `GET /v1/households` (one cursor, 500"
        f" a page) in {data['list_seconds']} s; {data['teams']:,}"
        f" `POST /v1/organizations` in {data['teams_seconds']} s; every household assigned, up"
        f" to 1,000 a request, with `POST /v1/households/mentor-team` in"
        f" {data['assignments_seconds']} s; the logbook knew every household's team"
        f" {data['logbook_wait_seconds']} s later.",
        f"- Logbook history: {data['history']['entries']:,} entries over three years"
        f" (`pinpoint generate logbook`:"
        f" {', '.join(f'{k} {v:,}' for k, v in sorted(data['history']['kinds'].items()))}),"
        " uploaded as CSV to `POST /v1/imports/logbook` through the gateway, in"
        f" {data['history']['seconds']:.1f} s ({data['history']['per_s']:,.0f} entries/s);"
        f" all services had applied every event {data['catch_up_after_history_s']} s after"
        " the import finished.",
        "",
        "## Load through the gateway",
        "",
        "The mix (per 100 requests) follows DESIGN.md: reads are officers listing their"
        " district's households and watching progress, which §8 says must answer from"
        " projections; writes follow the logbook's shape in issue 8 (10,000,000 entries for"
        " 1,000,000 households over three years, about ten each): visits and interventions"
        " in equal parts, one in two interventions completed later, and about one household"
        " status change (graduation, or back into care) per ten entries. The clients are a"
        " closed loop (each sends its next request when the last is answered), so the latency"
        " under load is that of a saturated machine, queueing included, and the requests per"
        " second are what this machine gave at that moment.",
        "",
        "| route | share | requests | errors | req/s | median ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for route, f in load["routes"].items():
        lines.append(
            f"| `{route}` | {MIX[route]}% | {f['requests']:,} | {f['errors']} | {f['per_s']} |"
            f" {_ms(f['median_ms'])} | {_ms(f['p95_ms'])} | {_ms(f['p99_ms'])} |"
        )
    every = load["all_routes"]
    lines += [
        f"| **all** | 100% | {load['requests']:,} | {load['errors']} | {load['per_s']} |"
        f" {_ms(every['median_ms'])} | {_ms(every['p95_ms'])} | {_ms(every['p99_ms'])} |",
        "",
        "CPU each process spent per request of the mix (the load's requests and everything they"
        " set off: relays, consumers, projections):",
        "",
        "| process | CPU ms per request |",
        "| --- | ---: |",
        *(f"| {name} | {ms} |" for name, ms in load["cpu_ms_per_request"].items()),
        f"| **all four** | {sum(load['cpu_ms_per_request'].values()):.2f} |",
        "",
    ]
    if load["error_examples"]:
        lines += ["Errors seen (first few):", ""]
        lines += [f"- `{e}`" for e in load["error_examples"][:5]]
        lines.append("")
    lines += [
        "## Baselines of the same run: the same read straight to its service",
        "",
        "After the load, with the system quiet, each read of the mix one request after another,"
        " alternating in four rounds between the gateway (bearer token) and the owning service"
        " (the internal token the gateway would forward). CPU is the gateway's and the"
        " service's process time per request.",
        "",
        "| read | path | median ms | p95 ms | p99 ms | median ratio | p99 ratio"
        " | CPU ms (gateway's part) | CPU ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for route, b in results["baseline"].items():
        g, d = b["gateway"], b["direct"]
        lines += [
            f"| `{route}` | gateway | {_ms(g['median_ms'])} | {_ms(g['p95_ms'])} |"
            f" {_ms(g['p99_ms'])} | {_x(b['median_ratio'])} | {_x(b['p99_ratio'])} |"
            f" {b['cpu_ms_gateway_path']} ({b['cpu_ms_of_which_gateway']}) |"
            f" {_x(b['cpu_ratio'])} |",
            f"| | {b['service']} direct | {_ms(d['median_ms'])} | {_ms(d['p95_ms'])} |"
            f" {_ms(d['p99_ms'])} | | | {b['cpu_ms_direct']} | |",
        ]
    load_vs_quiet = [
        f"`{route}` ×{load['routes'][route]['median_ms'] / b['direct']['median_ms']:.1f}"
        for route, b in results["baseline"].items()
        if load["routes"][route]["median_ms"] and b["direct"]["median_ms"]
    ]
    rate = data["households"] / max(data["assignments_seconds"], 0.1)
    import_rate = data["import"]["rows_read"] / max(data["import"]["seconds"], 0.1)
    history_events_rate = data["history"]["entries"] / max(
        data["history"]["seconds"] + data["catch_up_after_history_s"], 0.1
    )
    lines += [
        "",
        "Median under the load against the quiet direct read: " + ", ".join(load_vs_quiet) + ".",
        "",
        "## Outbox backlog and analytics lag",
        "",
        "Sampled every second from the history's start to the end (see the plot): pending"
        " outbox rows of the registry and the logbook (the last figure carried while a look at"
        " an outbox is slow: while an import's transaction writes its events), events waiting"
        " in analytics' two consumers (not yet delivered or not yet acked), and analytics' lag:"
        " the age of the"
        " oldest write it has not applied yet, whether its event still waits in an outbox or in"
        " the stream (0 when nothing waits).",
        "",
        "| during the load and its catch-up | worst second |",
        "| --- | ---: |",
        f"| registry outbox backlog (rows) | {_during(rows, marks, 'outbox_registry'):,} |",
        f"| logbook outbox backlog (rows) | {_during(rows, marks, 'outbox_logbook'):,} |",
        f"| events waiting for analytics | {_during(rows, marks, 'analytics_pending'):,} |",
        f"| events waiting for the registry's and logbook's consumers |"
        f" {_during(rows, marks, 'others_pending'):,} |",
        f"| analytics lag (oldest write not yet applied) |"
        f" {_during(rows, marks, 'analytics_lag_s'):.2f} s |",
        "",
        f"After the last request of the load, every outbox was empty and every consumer had"
        f" applied every event in **{load['catch_up_s']} s** (after the history:"
        f" {data['catch_up_after_history_s']} s).",
        "",
        "![latency and lag over time](latency_lag.svg)",
        "",
        "## Totals: analytics against the records",
        "",
        f"Expected totals computed from the registry's `household` and the logbook's"
        f" `intervention` tables, compared with `GET /v1/progress/TH`, the children of the"
        f" country, of every province and of {totals['districts_sampled_for_subdistricts']}"
        f" sampled districts: {totals['areas_compared']:,} areas, every measure overall and"
        f" per dimension ({totals['cells_compared']:,} numbers).",
        "",
        f"**Result: {'all equal' if totals['equal'] else 'MISMATCH'}**"
        + ("" if totals["equal"] else f" ({totals['mismatch_count']} differences)"),
        "",
        *(f"- {m}" for m in totals["mismatches"][:10]),
        *([""] if totals["mismatches"] else []),
        "## Rates of the bulk steps",
        "",
        "Each bulk step's rate in this run"
        + (
            ":"
            if size["households"] >= NATIONAL_HOUSEHOLDS
            else ". At a smaller size fixed costs weigh (one import job per file, one assignment"
            " request per team even for two households), so these are floors, not forecasts,"
            " for 1,000,000 households and 10,000,000 entries:"
        ),
        "",
        f"- target-list import: {import_rate:,.0f} rows/s;",
        f"- mentor-team assignment, up to 1,000 households a request: {rate:,.0f} households/s;",
        f"- history import: {data['history']['per_s']:,.0f} entries/s;",
        f"- the history's events through every consumer: {history_events_rate:,.0f} entries/s"
        " from the upload's start until every service had applied the last event.",
        "- The totals check reads every household once (server-side cursor) and the logbook by"
        " SQL aggregates; it needs no change at national size.",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency percentiles and requests per second above; backlogs, waiting events and lag below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, marks = results["samples"], results["marks"]
    t = [r["t"] for r in rows]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    for key, label in (("p50_ms", "median"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        top.plot(t, [r[key] if r[key] is not None else float("nan") for r in rows], label=label)
    top.set_ylabel("request latency (ms), per second")
    top.set_yscale("log")
    rate = top.twinx()
    rate.plot(t, [r["requests"] for r in rows], color="grey", alpha=0.4, label="requests/s")
    rate.set_ylabel("requests answered per second")
    lines, labels = top.get_legend_handles_labels()
    more, more_labels = rate.get_legend_handles_labels()
    top.legend(lines + more, labels + more_labels, loc="upper left", fontsize=8)
    for key, label in (
        ("outbox_registry", "registry outbox backlog"),
        ("outbox_logbook", "logbook outbox backlog"),
        ("analytics_pending", "events waiting for analytics"),
        ("others_pending", "events waiting for registry/logbook"),
    ):
        bottom.plot(t, [r[key] for r in rows], label=label)
    bottom.set_ylabel("rows / events waiting")
    lag = bottom.twinx()
    lag.plot(t, [r["analytics_lag_s"] for r in rows], color="black", ls=":", label="analytics lag")
    lag.set_ylabel("analytics lag (s)")
    lines, labels = bottom.get_legend_handles_labels()
    more, more_labels = lag.get_legend_handles_labels()
    bottom.legend(lines + more, labels + more_labels, loc="upper left", fontsize=8)
    bottom.set_xlabel("seconds since the history began")
    for axis in (top, bottom):
        if "history" in marks and "load_start" in marks:
            axis.axvspan(marks["history"], marks["load_start"], color="tab:blue", alpha=0.06)
        if "load_start" in marks and "load_end" in marks:
            axis.axvspan(marks["load_start"], marks["load_end"], color="tab:orange", alpha=0.1)
        if "caught_up" in marks:
            axis.axvline(marks["caught_up"], color="green", ls="--", lw=1)
    top.set_title(
        f"pinpoint proof, {results['size']['name']} size: history (blue), load (orange),"
        " caught up (green line)"
    )
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)


def write_outputs(out: Path, results: dict[str, Any]) -> None:
    results["machine"] = machine()
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    with (out / "samples.csv").open("w", newline="") as f:
        if results["samples"]:
            writer = csv.DictWriter(f, fieldnames=list(results["samples"][0]))
            writer.writeheader()
            writer.writerows(results["samples"])
    plot(results, out / "latency_lag.svg")
    (out / "report.md").write_text(report(results), encoding="utf-8")
