"""Intervention status changes: found by their intervention through an index.

An intervention's detail, and the answer to every change of its status, lists its status
changes (`WHERE intervention_id IN (...) ORDER BY changed_at, id`). Without an index on the
column the list read the whole table: about 300 ms a request with four million status changes
(the national proof's history), three quarters of PostgreSQL's time under the national load.
The index also spares the foreign key's check a whole-table read for every intervention
removed.

Built in the migration's transaction, not concurrently: replicas that start together wait for
one another's migration on an advisory lock, and a concurrent build waits for every snapshot
older than its own, the waiting replicas' among them. Writes to the table wait for the build
(seconds at national size), once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "intervention_status_change_intervention",
        "intervention_status_change",
        ["intervention_id", "changed_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("intervention_status_change_intervention", "intervention_status_change")
