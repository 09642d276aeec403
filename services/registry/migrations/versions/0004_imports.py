"""Bulk import of the target list: jobs, rejected rows, the staging template and SQL checks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The columns of the CSV format (docs/import-format.md), all text as written in the file, plus
# what the parser adds: the line, the citizen ID normalised, encrypted and blind-indexed.
STAGE_COLUMNS = """
    line bigint NOT NULL,
    house_code text NOT NULL,
    household_key text NOT NULL,
    area_code text NOT NULL,
    address text NOT NULL,
    survey_year text NOT NULL,
    failed_indicators text NOT NULL,
    lat text NOT NULL,
    lon text NOT NULL,
    citizen_id text NOT NULL,
    citizen_id_cipher bytea,
    citizen_id_index bytea,
    citizen_id_masked text,
    title text NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    sex text NOT NULL,
    birth_date text NOT NULL,
    relation text NOT NULL,
    disability text NOT NULL,
    welfare_card text NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("bytes_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_imported", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("households_imported", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "import_rejection",
        sa.Column("job_id", sa.Uuid, sa.ForeignKey("import_job.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line", sa.BigInteger, primary_key=True),
        sa.Column("column", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    # A household imported without a house code is known by its file's household key (with its
    # area), so that a re-run of the same file finds it again.
    op.add_column("household", sa.Column("import_key", sa.Text))
    op.create_index("household_import_key", "household", ["import_key"], unique=True,
                    postgresql_where=sa.text("import_key IS NOT NULL"))

    # The template each job's UNLOGGED staging table is cloned from (no WAL, dropped after).
    op.execute(f"CREATE UNLOGGED TABLE import_stage ({STAGE_COLUMNS})")

    # Time-ordered ids for rows made in SQL, like the uuid7() the code uses.
    op.execute("""
        DO $$ BEGIN
          IF current_setting('server_version_num')::int >= 180000 THEN
            CREATE FUNCTION registry_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE
              AS 'SELECT uuidv7()';
          ELSE
            CREATE FUNCTION registry_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $f$
              SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
                substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
            $f$;
          END IF;
        END $$
    """)
    # The check digit of a Thai citizen ID (shared/thai.py says the same in Python).
    op.execute("""
        CREATE FUNCTION registry_citizen_id_ok(d text) RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
          SELECT CASE WHEN d ~ '^[1-9][0-9]{12}$' THEN
            (11 - (substr(d, 1, 1)::int * 13 + substr(d, 2, 1)::int * 12
                 + substr(d, 3, 1)::int * 11 + substr(d, 4, 1)::int * 10
                 + substr(d, 5, 1)::int * 9 + substr(d, 6, 1)::int * 8
                 + substr(d, 7, 1)::int * 7 + substr(d, 8, 1)::int * 6
                 + substr(d, 9, 1)::int * 5 + substr(d, 10, 1)::int * 4
                 + substr(d, 11, 1)::int * 3 + substr(d, 12, 1)::int * 2) % 11) % 10
            = substr(d, 13, 1)::int
          ELSE false END
        $$
    """)
    # Whether text is a real calendar date YYYY-MM-DD (a cast would raise on 2023-02-30).
    op.execute("""
        CREATE FUNCTION registry_date_ok(d text) RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
          SELECT CASE WHEN d ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' THEN
            substr(d, 9, 2)::int <= extract(day FROM make_date(substr(d, 1, 4)::int,
              substr(d, 6, 2)::int, 1) + interval '1 month - 1 day')
            AND substr(d, 1, 4)::int BETWEEN 1880 AND 2999
          ELSE false END
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION registry_date_ok(text)")
    op.execute("DROP FUNCTION registry_citizen_id_ok(text)")
    op.execute("DROP FUNCTION registry_uuid7()")
    op.execute("DROP TABLE import_stage")
    op.drop_index("household_import_key", "household")
    op.drop_column("household", "import_key")
    op.drop_table("import_rejection")
    op.drop_table("import_job")
