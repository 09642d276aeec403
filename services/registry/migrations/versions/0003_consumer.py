"""The registry's record of applied events and its dead letters (it consumes LOGBOOK).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op

from shared.consumer import consumer_tables_ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    consumer_tables_ddl(op)


def downgrade() -> None:
    op.drop_table("dead_letter")
    op.drop_table("processed_event")
