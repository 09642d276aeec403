"""Alembic environment of the analytics database."""

from shared.migrations import run_env

run_env()
