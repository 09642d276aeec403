"""`pinpoint generate households` and `pinpoint import households` against the real servers."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import services.registry.imports
from services.registry.settings import RegistrySettings
from shared.thai import normalize_citizen_id
from tests.conftest import ClientFactory, registry_rows
from tests.registry.imports_support import import_file

SAMPLE = Path(services.registry.imports.__file__).parent / "sample.csv"


def _pinpoint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinpoint", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _generate(*args: str) -> str:
    done = _pinpoint("generate", "households", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_generate_is_deterministic_by_seed_and_valid() -> None:
    first = _generate("--households", "200", "--seed", "7")
    assert first == _generate("--households", "200", "--seed", "7")
    assert first != _generate("--households", "200", "--seed", "8")
    rows = list(csv.DictReader(io.StringIO(first)))
    ids = [r["citizen_id"] for r in rows]
    assert all(normalize_citizen_id(i) == i for i in ids)
    assert len(set(ids)) == len(ids)
    households = {r["house_code"] or r["household_key"] for r in rows}
    assert len(households) == 200
    assert 2.5 <= len(rows) / 200 <= 4.5  # about 3.5 persons a household
    assert len({r["area_code"] for r in rows if r["area_code"]}) > 100  # all over the country


def test_generate_inside_an_area_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "chachoengsao.csv"
    _generate("--households", "50", "--area", "24", "--out", str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["area_code"][:2] for r in rows if r["area_code"]} == {"24"}


async def test_a_generated_file_imports_without_a_rejected_row(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    body = _generate("--households", "300", "--seed", "11").encode()
    summary = await import_file(as_caller("national_admin", "TH"), body)
    assert summary["state"] == "done", summary
    assert summary["rows_rejected"] == 0, summary["rejected"][:5]
    assert summary["households_imported"] == 300
    assert summary["rows_imported"] == summary["rows_read"] == body.count(b"\n") - 1


async def test_the_sample_file_imports_cleanly(as_caller: ClientFactory) -> None:
    summary = await import_file(as_caller("province_officer", "24"), SAMPLE.read_bytes())
    assert summary["state"] == "done" and summary["rows_rejected"] == 0
    assert summary["households_imported"] == 4


async def test_the_cli_imports_a_file_and_writes_its_rejects(
    registry_settings: RegistrySettings, tmp_path: Path
) -> None:
    file = tmp_path / "households.csv"
    text = _generate("--households", "40", "--seed", "5", "--area", "2401")
    lines = text.splitlines(keepends=True)
    bad = lines[1].split(",")
    bad[2] = "99999999"  # an area that does not exist: the first household is rejected
    file.write_text("".join([lines[0], ",".join(bad), *lines[2:]]), encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    database_url = registry_settings.database_url.replace("+asyncpg", "")

    done = _pinpoint(
        "import",
        "households",
        str(file),
        "--database-url",
        database_url,
        "--data-dir",
        str(tmp_path),
        "--rejects",
        str(rejects),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["state"] == "done"
    assert summary["households_imported"] == 39
    assert summary["rows_rejected"] >= 1
    written = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert written[0] == {
        "line": "2",
        "column": "area_code",
        "reason": "no village or sub-district 99999999",
    }
    assert len({r["line"] for r in written}) == summary["rows_rejected"]
    (count,) = await registry_rows(registry_settings, "SELECT count(*) FROM household")
    assert count[0] == 39
