"""Net changes per area, dimension and month: the monthly series is their running sum.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MEASURES = ("target_households", "reached_households", "graduated_households",
            "planned", "in_progress", "completed", "cancelled")


def upgrade() -> None:
    op.create_table(
        "area_month",
        sa.Column("area_code", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        *(sa.Column(m, sa.BigInteger, nullable=False, server_default="0") for m in MEASURES),
        sa.Column("amount_thb", sa.Numeric(18, 2), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("area_month")
