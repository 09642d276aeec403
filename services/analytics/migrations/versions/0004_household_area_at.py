"""When the area and dimensions a household fact holds were set: a late update never
overwrites them.

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


def upgrade() -> None:
    op.add_column("household_fact", sa.Column("area_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("household_fact", "area_at")
