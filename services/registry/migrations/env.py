"""Alembic environment of the registry's database."""

from shared.migrations import run_env

run_env()
