"""Facts per household and per intervention, totals per area and dimension, and the areas.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import geothai
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.consumer import consumer_tables_ddl
from shared.idempotency import idempotency_table_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _counts() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in ("target_households", "reached_households", "graduated_households",
                         "planned", "in_progress", "completed", "cancelled")]


def upgrade() -> None:
    # Reference data of its own (never read from another service): names of the areas.
    area = op.create_table(
        "area",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("name_th", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text),
        sa.Column("parent_code", sa.Text),
    )
    op.create_index("area_parent", "area", ["parent_code", "code"])

    op.create_table(
        "household_fact",
        sa.Column("household_id", sa.Uuid, primary_key=True),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("registered", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("status", sa.Text),
        sa.Column("dimensions", ARRAY(sa.Text), nullable=False, server_default="{}"),
        # Live interventions (neither cancelled nor superseded) by dimension.
        sa.Column("live", JSONB, nullable=False, server_default="{}"),
    )
    op.create_table(
        "intervention_fact",
        sa.Column("intervention_id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("menu_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("amount_thb", sa.Numeric(16, 2)),
        sa.Column("superseded", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_table(
        "area_progress",
        sa.Column("area_code", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, primary_key=True),
        *_counts(),
        sa.Column("amount_thb", sa.Numeric(18, 2), nullable=False, server_default="0"),
        sa.Column("as_of", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "menu_progress",
        sa.Column("area_code", sa.Text, primary_key=True),
        sa.Column("menu_code", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, primary_key=True),
        sa.Column("interventions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("amount_thb", sa.Numeric(18, 2), nullable=False, server_default="0"),
    )
    consumer_tables_ddl(op)
    idempotency_table_ddl(op)

    provinces = geothai.provinces()
    districts = [d for p in provinces for d in geothai.districts(p.code)]
    rows = [{"code": "TH", "level": "country", "name_th": "ประเทศไทย", "name_en": "Thailand",
             "parent_code": None}]
    rows += [{"code": p.code, "level": "province", "name_th": p.name_th, "name_en": p.name_en,
              "parent_code": "TH"} for p in provinces]
    rows += [{"code": d.code, "level": "district", "name_th": d.name_th, "name_en": d.name_en,
              "parent_code": d.province_code} for d in districts]
    rows += [{"code": s.code, "level": "subdistrict", "name_th": s.name_th,
              "name_en": s.name_en, "parent_code": s.district_code}
             for d in districts for s in geothai.subdistricts(d.code)]
    op.bulk_insert(area, rows)


def downgrade() -> None:
    for table in ("idempotency_key", "dead_letter", "processed_event",
                  "menu_progress", "area_progress", "intervention_fact", "household_fact",
                  "area"):
        op.drop_table(table)
