"""Households: a team assignment or a status change rewrites the row in place.

A household's team and status change about twice each in its life (given to a team, moved on
at its first visit, and later graduated), a million times each at national size. With an index
on either column every such change wrote a new row version into all eight of the table's
indexes (the two GIN ones among them): 0.15 ms an update on a million households alone, 0.44 ms
with the rest of the system at work. Without them, and with room left on each page
(fillfactor 85), PostgreSQL keeps the new version on the same page and touches no index (a
heap-only update): 0.013 ms.

What the two indexes served is served otherwise: a list by team is narrowed to the team's own
sub-district (services/registry/domain/households.py), where the area index finds its few
hundred households; a list by status is filtered inside the asked area by the same index. Only
a list by a rare status over the whole country reads the whole table (about 0.2 s at a million
households).

Existing pages keep no room until they are rewritten (a VACUUM FULL, or as rows move); new
ones, as an import writes them, do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("household_team", "household")
    op.drop_index("household_status", "household")
    op.execute("ALTER TABLE household SET (fillfactor = 85)")


def downgrade() -> None:
    op.execute("ALTER TABLE household RESET (fillfactor)")
    op.create_index("household_status", "household", ["status", "id"])
    op.create_index("household_team", "household", ["mentor_team_id", "id"])
