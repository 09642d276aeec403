"""Answers kept for an `Idempotency-Key` replay are sealed from now on: forget those kept in clear.

The registry's answers show citizen IDs, which rest nowhere else in clear. Answers are kept
for a day; those kept before this revision are deleted rather than left readable for the rest
of it. A client that retries, after the upgrade, a POST answered before it acts again: a
household with a house code or a member with a citizen ID is refused as registered already,
a household with neither could be registered twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_key")


def downgrade() -> None:
    # The sealed answers cannot be read by the code before this revision.
    op.execute("DELETE FROM idempotency_key")
