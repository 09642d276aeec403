"""`pinpoint up` as a newcomer runs it: real servers, migrations, services, demo data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pinpoint.devservers import free_port


def _up(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pinpoint",
            "up",
            "--check",
            "--data-dir",
            str(data_dir),
            "--postgres-port",
            str(free_port()),
            "--nats-port",
            str(free_port()),
            "--registry-port",
            str(free_port()),
            "--logbook-port",
            str(free_port()),
            "--analytics-port",
            str(free_port()),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_up_starts_everything_with_demo_data_and_reuses_its_folder(tmp_path: Path) -> None:
    first = _up(tmp_path, "--demo", "--demo-households", "300")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "300 households loaded" in first.stdout
    assert "logbook history: {'visits'" in first.stdout
    assert "all services answer" in first.stdout
    assert (tmp_path / "secrets.json").exists()

    second = _up(tmp_path, "--demo", "--demo-households", "300")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already loaded" in second.stdout
    assert "history already present" in second.stdout
