"""A target-list import keeps its `Idempotency-Key` and its file's hash: a retry of the same
upload under the same key answers the first import instead of making another job.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_job", sa.Column("idempotency_key", sa.Text))
    op.add_column("import_job", sa.Column("body_sha256", sa.LargeBinary))
    op.create_index(
        "import_job_idempotency_key",
        "import_job",
        ["created_by", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("import_job_idempotency_key", "import_job")
    op.drop_column("import_job", "body_sha256")
    op.drop_column("import_job", "idempotency_key")
