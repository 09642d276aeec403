"""Bulk import of logbook history: jobs, rejected rows, the entry keys and the staging template.

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

# The columns of the history CSV format (services/logbook/imports/csvformat.py), all text as
# written in the file, after the line the row starts on.
STAGE_COLUMNS = """
    line bigint NOT NULL,
    kind text NOT NULL,
    household_id text NOT NULL,
    team_id text NOT NULL,
    at text NOT NULL,
    dimension text NOT NULL,
    menu_code text NOT NULL,
    amount_thb text NOT NULL,
    status text NOT NULL,
    completed_at text NOT NULL,
    description text NOT NULL,
    capitals text NOT NULL,
    note text NOT NULL,
    entry_key text NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "history_import_job",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("body_sha256", sa.LargeBinary),
        sa.Column("bytes_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_imported", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("visits_imported", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("interventions_imported", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    # A caller's Idempotency-Key names one upload: a replay finds the first job.
    op.create_index("history_import_job_idempotency_key", "history_import_job", ["created_by", "idempotency_key"],
                    unique=True, postgresql_where=sa.text("idempotency_key IS NOT NULL"))
    op.create_table(
        "history_import_rejection",
        sa.Column("job_id", sa.Uuid, sa.ForeignKey("history_import_job.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line", sa.BigInteger, primary_key=True),
        sa.Column("column", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    # Each imported entry under the file's own key, unique within its household across visits
    # and interventions: a re-run of the same file finds every entry it imported before.
    op.create_table(
        "imported_entry",
        sa.Column("household_id", sa.Uuid, primary_key=True),
        sa.Column("entry_key", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("entry_id", sa.Uuid, nullable=False),
        sa.Column("job_id", sa.Uuid, nullable=False),
    )

    # The template each job's UNLOGGED staging table is cloned from (no WAL, dropped after).
    op.execute(f"CREATE UNLOGGED TABLE history_stage ({STAGE_COLUMNS})")

    # The id of the n-th row of a kind (visit, intervention, …) an import makes: a UUIDv7 whose
    # first 80 bits (time and random) are the import's own and whose last 48 bits count, so
    # millions of ids cost no system call each (as the registry's import makes its ids).
    op.execute("""
        CREATE FUNCTION logbook_import_id(prefix text, kind int, n bigint) RETURNS uuid
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT (prefix || to_hex((1::bigint << 47) | (kind::bigint << 40) | n))::uuid $$
    """)
    # Whether text is a moment in ISO 8601 with its offset (Z or ±hh[:mm]): a time without
    # one would be read in the server's time zone, which the file cannot mean.
    op.execute(r"""
        CREATE FUNCTION logbook_moment_ok(t text) RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
          SELECT t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$'
                 AND pg_input_is_valid(t, 'timestamptz')
                 AND substr(t, 1, 4)::int BETWEEN 1900 AND 2999
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION logbook_moment_ok(text)")
    op.execute("DROP FUNCTION logbook_import_id(text, int, bigint)")
    op.execute("DROP TABLE history_stage")
    op.drop_table("imported_entry")
    op.drop_table("history_import_rejection")
    op.drop_index("history_import_job_idempotency_key", "history_import_job")
    op.drop_table("history_import_job")
