"""Idempotency keys of POST requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

from shared.idempotency import idempotency_table_ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    idempotency_table_ddl(op)


def downgrade() -> None:
    op.drop_table("idempotency_key")
