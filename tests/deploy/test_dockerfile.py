"""The image: hadolint finds nothing, and it installs exactly what the lock file pins."""

from __future__ import annotations

import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.support import DEPLOY, dev_tool

ROOT = DEPLOY.parent
DOCKERFILE = DEPLOY / "Dockerfile"
LOCK = DEPLOY / "requirements.lock"


def _pins() -> dict[str, tuple[str, str]]:
    """Each locked package's version and its entry (with the hash lines under it)."""
    entries = re.split(r"\n(?=[a-z0-9])", LOCK.read_text())
    pins: dict[str, tuple[str, str]] = {}
    for entry in entries:
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", entry)
        if match:
            pins[canonicalize_name(match[1])] = (match[2], entry)
    return pins


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [dev_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_runtime_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in deploy/requirements.lock: run `make lock`"
        version, entry = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in the lock does not satisfy {line!r}: run `make lock`"
        )
        assert "--hash=sha256:" in entry, f"{name} has no hash in the lock"


def test_the_build_backend_is_locked_too() -> None:
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = _pins()
    for line in backend:
        requirement = Requirement(line)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version)


def test_dependencies_come_from_the_lock_with_hashes_only() -> None:
    text = DOCKERFILE.read_text()
    assert "--require-hashes" in text
    assert "COPY deploy/requirements.lock" in text
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    assert installs and all("--no-deps" in command for command in installs)


def test_the_running_stage_is_a_pinned_slim_image_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    final_stage = text.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", final_stage, re.M)
    assert user and user[1].split(":")[0] not in {"root", "0"}
    for instruction in ("HEALTHCHECK", "EXPOSE", "ENTRYPOINT", "org.opencontainers.image.title"):
        assert instruction in final_stage


def test_the_build_context_lets_in_what_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE.read_text(), re.M):
        for source in line.split()[:-1]:
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source
