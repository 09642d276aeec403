"""When the status a household fact holds was set: a late status event never overwrites it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("household_fact", sa.Column("status_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("household_fact", "status_at")
