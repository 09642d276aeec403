"""Alembic environment of the logbook's database."""

from shared.migrations import run_env

run_env()
