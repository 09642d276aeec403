"""`pinpoint generate logbook` and `pinpoint import logbook`: seeded, realistic, and importable
with no rejected row."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from fastapi import FastAPI

import services.logbook.imports
from services.logbook.imports.generate import (
    Household,
    catalogue,
    generate_logbook,
    read_households,
)
from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows
from tests.logbook.history_support import import_file, rejected
from tests.logbook.support import household, organization, wait_known

SAMPLE = Path(services.logbook.imports.__file__).parent / "sample.csv"
UNTIL = "2026-11-01T00:00:00+07:00"


def _pinpoint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinpoint", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _households_file(path: Path, households: list[tuple[str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["household_id", "area_code", "team_id"])
        writer.writerows(households)
    return path


def _generate(households: Path, *args: str) -> str:
    done = _pinpoint("generate", "logbook", "--households", str(households), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_generate_is_deterministic_by_seed_and_realistic(tmp_path: Path) -> None:
    # Fixed ids: each household's entries are drawn from the seed and its id, so random ids
    # would make the shares below a matter of luck.
    ids = [str(UUID(int=n + 1)) for n in range(40)]
    teams = [str(UUID(int=1000 + n)) if n % 4 else "" for n in range(40)]
    homes = _households_file(
        tmp_path / "households.csv", [(h, "24010101", t) for h, t in zip(ids, teams, strict=True)]
    )
    first = _generate(homes, "--entries", "1000", "--seed", "7", "--until", UNTIL)

    def again(seed: int) -> str:
        with homes.open(encoding="utf-8", newline="") as f:
            until = datetime.fromisoformat(UNTIL)
            return "".join(generate_logbook(read_households(f), 40, 1000, seed=seed, until=until))

    assert first == again(7)
    assert first != again(8)

    # Written in parts from where each begins (as the proof writes it, a part a core) and
    # joined in order: the same file, entries that do not divide evenly included.
    with homes.open(encoding="utf-8", newline="") as f:
        every = list(read_households(f))
    until = datetime.fromisoformat(UNTIL)
    whole = "".join(generate_logbook(every, 40, 1003, seed=7, until=until))
    parts = [
        "".join(generate_logbook(every[a:b], 40, 1003, seed=7, until=until, start=a))
        for a, b in ((0, 13), (13, 40))
    ]
    assert parts[0].startswith("kind,") and not parts[1].startswith("kind,")
    assert "".join(parts) == whole

    rows = list(csv.DictReader(io.StringIO(first)))
    assert len(rows) == 1000
    assert Counter(r["household_id"] for r in rows) == dict.fromkeys(ids, 25)
    until = datetime.fromisoformat(UNTIL)
    menus = {item.code: d for d, items in catalogue().items() for item in items}
    kinds = Counter(r["kind"] for r in rows)
    assert 0.45 < kinds["visit"] / 1000 < 0.65
    for household_id, team in zip(ids, teams, strict=True):
        mine = [r for r in rows if r["household_id"] == household_id]
        times = [datetime.fromisoformat(r["at"]) for r in mine]
        assert times == sorted(times), "in time order per household"
        assert until - timedelta(days=3 * 365) <= times[0] and times[-1] <= until
        visits = [t for t, r in zip(times, mine, strict=True) if r["kind"] == "visit"]
        gaps = [(b - a).days for a, b in itertools.pairwise(visits)]
        assert all(20 <= g <= 100 for g in gaps), gaps  # one to three months, at working hours
        assert {r["team_id"] for r in mine if r["kind"] == "visit"} == {team}
        assert len({r["entry_key"] for r in mine}) == len(mine)
    entries = [r for r in rows if r["kind"] == "intervention"]
    assert all(menus[r["menu_code"]] == r["dimension"] for r in entries)
    statuses = Counter(r["status"] for r in entries)
    assert statuses["completed"] > statuses["in_progress"] > statuses["cancelled"] > 0
    assert statuses["planned"] > 0
    assert all(bool(r["completed_at"]) is (r["status"] == "completed") for r in entries)
    dimensions = Counter(r["dimension"] for r in entries)
    assert dimensions.most_common(1)[0][0] == "income"
    assert all(r["amount_thb"] == "" or int(r["amount_thb"]) > 0 for r in entries)


async def test_a_generated_file_imports_without_a_rejected_row(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    with_team = [await household(admin, team) for _ in range(3)]
    without = [await household(admin, area_code="240102") for _ in range(2)]
    for h in with_team:
        await wait_known(logbook_settings, h, mentor_team_id=team)
    for h in without:
        await wait_known(logbook_settings, h)
    homes = [Household(h, "240101", team) for h in with_team]
    homes += [Household(h, "240102", "") for h in without]
    until = datetime.now().astimezone()
    body = "".join(generate_logbook(homes, len(homes), 200, seed=3, until=until)).encode()

    summary = await import_file(logbook_as("province_officer", "24"), body)
    assert summary["state"] == "done", summary
    assert summary["rows_rejected"] == 0, summary["rejected"][:5]
    assert summary["rows_imported"] == summary["rows_read"] == 200
    assert summary["visits_imported"] + summary["interventions_imported"] == 200
    (outbox,) = await db_rows(logbook_settings, "SELECT count(*) FROM outbox")
    assert outbox[0] == 200


async def test_the_sample_file_is_the_format(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    # Its household is not ours: every row is read and rejected for that alone.
    summary = await import_file(logbook_as("national_admin", "TH"), SAMPLE.read_bytes())
    assert summary["state"] == "done" and summary["rows_read"] == 6
    assert all(set(r) == {"household_id"} for r in rejected(summary).values())
    assert summary["rows_rejected"] == 6


async def test_the_cli_imports_a_file_and_writes_its_rejects(
    as_caller: ClientFactory,
    logbook_app: FastAPI,  # running: its consumer learns of the household
    logbook_settings: LogbookSettings,
    tmp_path: Path,
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    h = await household(admin, team)
    await wait_known(logbook_settings, h, mentor_team_id=team)
    homes = _households_file(tmp_path / "households.csv", [(h, "240101", team)])
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    text = _generate(homes, "--entries", "30", "--seed", "5", "--until", now)
    lines = text.splitlines(keepends=True)
    file = tmp_path / "history.csv"
    file.write_text("".join([*lines, lines[1]]), encoding="utf-8")  # the first entry twice
    rejects = tmp_path / "rejects.csv"

    done = _pinpoint(
        "import",
        "logbook",
        str(file),
        "--database-url",
        logbook_settings.database_url.replace("+asyncpg", ""),
        "--data-dir",
        str(tmp_path),
        "--rejects",
        str(rejects),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["state"], summary["rows_imported"], summary["rows_rejected"]) == ("done", 30, 1)
    written = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert written == [
        {
            "line": "32",
            "column": "entry_key",
            "reason": "the same entry_key of this household is on line 2",
        }
    ]
    (count,) = await db_rows(logbook_settings, "SELECT count(*) FROM imported_entry")
    assert count[0] == 30
