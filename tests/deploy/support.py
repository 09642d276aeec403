"""Paths and tools the deploy checks share: they read files and run linters, no servers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def dev_tool(name: str) -> str:
    """A tool a dev dependency installs beside this interpreter; its absence fails the test."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install the dev dependencies (pip install -e '.[dev]')")
    return found
