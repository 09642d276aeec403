"""`pinpoint up` as a newcomer runs it: real servers, migrations, services, demo data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

from pinpoint.devservers import free_port
from services.gateway.passwords import secret_matches
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenVerifier, load_signing_key
from shared.auth import Caller, Role

TOKEN = (sys.executable, "-m", "pinpoint", "token")


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
            "--gateway-port",
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
    assert "gateway: refuses requests without a token, accepts `pinpoint token`'s" in first.stdout
    assert "all services answer" in first.stdout
    assert (tmp_path / "secrets.json").exists()
    assert (tmp_path / "gateway-signing-key.pem").stat().st_mode & 0o077 == 0

    second = _up(tmp_path, "--demo", "--demo-households", "300")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already loaded" in second.stdout
    assert "history already present" in second.stdout


async def test_pinpoint_token_prints_a_token_the_gateway_of_that_folder_accepts(
    tmp_path: Path,
) -> None:
    team = uuid4()
    printed = await asyncio.to_thread(
        subprocess.run,
        [
            *TOKEN,
            "--role",
            "mentor",
            "--area",
            "240101",
            "--team",
            str(team),
            "--data-dir",
            tmp_path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pem = (tmp_path / "gateway-signing-key.pem").read_text()
    settings = GatewaySettings(environment="test", signing_key=pem)
    verifier = TokenVerifier(settings, load_signing_key(pem).public_key())
    try:
        caller = await verifier.caller(printed.stdout.strip())
    finally:
        await verifier.aclose()
    assert caller == Caller(subject="mentor@240101", role=Role.mentor, area="240101", team_id=team)


def test_pinpoint_token_refuses_an_area_that_is_no_area(tmp_path: Path) -> None:
    refused = subprocess.run(
        [*TOKEN, "--role", "analyst", "--area", "Chachoengsao", "--data-dir", tmp_path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "area code" in refused.stderr


def test_pinpoint_oauth_client_prints_a_secret_and_the_entry_that_accepts_it() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "pinpoint", "oauth-client", "dopa-sync", "--area", "24"],
        capture_output=True,
        text=True,
        check=True,
    )
    secret, entry = printed.stdout.strip().splitlines()
    settings = GatewaySettings(environment="test", oauth_clients=[json.loads(entry)])
    (client,) = settings.oauth_clients
    assert (client.client_id, client.role, client.area) == ("dopa-sync", Role.system, "24")
    assert secret_matches(secret, client.secret_hash)
    assert secret not in entry
