"""Imports: a row's birth date is read once as it is copied in, not twice.

The staging template's `birth` column and the birth-date reason each called registry_date() on
the same text (about 2.3 µs a row here, a third of what the generated columns cost COPY). The
reason is now read from the stored `birth` after the upload (services/registry/imports/
repository.py, where `birth_date` is given and `birth` is NULL); its place in `reasons` stays,
NULL, so the positions of the other reasons do not move.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIRTH = """CASE WHEN birth_date <> '' AND registry_date(birth_date) IS NULL
    THEN 'a date as YYYY-MM-DD' END"""


def _reasons_0005() -> str:
    """The reasons expression as migration 0005 wrote it (one text, not a second copy)."""
    path = Path(__file__).with_name("0005_import_checks_at_copy.py")
    spec = importlib.util.spec_from_file_location("registry_migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reasons: str = module._REASONS
    assert _BIRTH in reasons
    return reasons


def _set_reasons(expression: str) -> None:
    # The template is empty; each job's staging table is cloned from it when the job starts.
    op.execute("ALTER TABLE import_stage DROP COLUMN reasons")
    op.execute(
        f"ALTER TABLE import_stage ADD COLUMN reasons text[] GENERATED ALWAYS AS ({expression}) STORED"
    )


def upgrade() -> None:
    _set_reasons(_reasons_0005().replace(_BIRTH, "NULL"))


def downgrade() -> None:
    _set_reasons(_reasons_0005())
