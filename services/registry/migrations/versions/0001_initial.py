"""The registry's tables, Thailand's areas (geothai) and the 2560 indicator set.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import geothai
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB

from shared.indicators import INDICATORS
from shared.outbox import outbox_table_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    area = op.create_table(
        "area",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("name_th", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text),
        sa.Column("parent_code", sa.Text, sa.ForeignKey("area.code")),
    )
    op.create_index("area_parent", "area", ["parent_code"])
    op.create_index("area_level", "area", ["level"])

    indicator = op.create_table(
        "indicator",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("set_version", sa.Text, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("name_th", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.UniqueConstraint("set_version", "number"),
    )

    op.create_table(
        "organization",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("area_code", sa.Text, sa.ForeignKey("area.code"), nullable=False),
        sa.Column("parent_id", sa.Uuid, sa.ForeignKey("organization.id")),
        sa.Column("ministry", sa.Text),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        *_timestamps(),
    )
    op.create_index("organization_area", "organization", [sa.text("area_code text_pattern_ops")])
    op.create_index("organization_kind", "organization", ["kind", "id"])

    op.create_table(
        "member",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organization.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("position", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("subject", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.create_index("member_organization", "member", ["organization_id", "id"])

    op.create_table(
        "household",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("house_code", sa.Text),
        sa.Column("area_code", sa.Text, sa.ForeignKey("area.code"), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("survey_year", sa.Integer),
        sa.Column("failed_indicators", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False, server_default="target"),
        sa.Column("mentor_team_id", sa.Uuid, sa.ForeignKey("organization.id")),
        sa.Column("search_text", sa.Text, nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_by", sa.Text, nullable=False),
        *_timestamps(),
    )
    op.create_index("household_house_code", "household", ["house_code"], unique=True,
                    postgresql_where=sa.text("house_code IS NOT NULL"))
    op.create_index("household_area", "household",
                    [sa.text("area_code text_pattern_ops"), "id"])
    op.create_index("household_indicators", "household", ["failed_indicators"],
                    postgresql_using="gin")
    op.create_index("household_search", "household", [sa.text("search_text gin_trgm_ops")],
                    postgresql_using="gin")
    op.create_index("household_team", "household", ["mentor_team_id", "id"])
    op.create_index("household_status", "household", ["status", "id"])

    op.create_table(
        "person",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, sa.ForeignKey("household.id"), nullable=False),
        sa.Column("citizen_id_cipher", BYTEA),
        sa.Column("citizen_id_index", BYTEA),
        sa.Column("citizen_id_masked", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("sex", sa.Text),
        sa.Column("birth_date", sa.Date),
        sa.Column("relation", sa.Text),
        sa.Column("disability", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("welfare_card", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        *_timestamps(),
    )
    op.create_index("person_citizen_id", "person", ["citizen_id_index"], unique=True,
                    postgresql_where=sa.text("citizen_id_index IS NOT NULL"))
    op.create_index("person_household", "person", ["household_id", "id"])

    op.create_table(
        "status_change",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, sa.ForeignKey("household.id"), nullable=False),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.create_index("status_change_household", "status_change", ["household_id", "id"])

    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Uuid, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("changes", JSONB, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("audit_entry_household", "audit_entry", ["household_id", "id"])

    op.create_table(
        "pii_access",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("person_id", sa.Uuid),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("pii_access_subject", "pii_access", ["subject", "at"])

    outbox_table_ddl(op)

    op.bulk_insert(area, [{"code": "TH", "level": "country", "name_th": "ประเทศไทย",
                           "name_en": "Thailand", "parent_code": None}])
    provinces = geothai.provinces()
    op.bulk_insert(area, [
        {"code": p.code, "level": "province", "name_th": p.name_th, "name_en": p.name_en,
         "parent_code": "TH"} for p in provinces
    ])
    districts = [d for p in provinces for d in geothai.districts(p.code)]
    op.bulk_insert(area, [
        {"code": d.code, "level": "district", "name_th": d.name_th, "name_en": d.name_en,
         "parent_code": d.province_code} for d in districts
    ])
    op.bulk_insert(area, [
        {"code": s.code, "level": "subdistrict", "name_th": s.name_th, "name_en": s.name_en,
         "parent_code": s.district_code}
        for d in districts for s in geothai.subdistricts(d.code)
    ])
    op.bulk_insert(indicator, [
        {"code": i.code, "set_version": i.set_version, "number": i.number,
         "dimension": i.dimension.value, "name_th": i.name_th, "name_en": i.name_en}
        for i in INDICATORS
    ])


def downgrade() -> None:
    for table in ("outbox", "pii_access", "audit_entry", "status_change", "person", "household",
                  "member", "organization", "indicator", "area"):
        op.drop_table(table)
