"""The read model keeps when each of a household's area, team and status was changed.

Two replicas apply batches side by side, and an event met while the database was away comes
again later: an assignment, a move or a status change can arrive after a newer one of the same
household. With the time of the change that set each, the older one leaves the newer as it is.
Rows written before this revision have none, so the next event of each sets it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("area_at", "team_at", "status_at")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("household_ref", sa.Column(column, sa.DateTime(timezone=True)))


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_column("household_ref", column)
