"""The logbook's tables, its read model of households and the starting menu catalogue.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.consumer import consumer_tables_ddl
from shared.idempotency import idempotency_table_ddl
from shared.outbox import outbox_table_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MENUS = Path(__file__).resolve().parents[2] / "data" / "menus.json"


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False,
                     server_default=sa.func.now())


def upgrade() -> None:
    menu = op.create_table(
        "menu_item",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("name_th", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("agency_hint", sa.Text),
        sa.Column("created_by", sa.Text, nullable=False),
        _at("created_at"),
    )
    op.create_index("menu_item_dimension", "menu_item", ["dimension", "code"])

    op.create_table(
        "household_ref",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("mentor_team_id", sa.Uuid),
        sa.Column("status", sa.Text, nullable=False),
        _at("refreshed_at"),
    )
    op.create_index("household_ref_team", "household_ref", ["mentor_team_id"])
    op.create_table(
        "organization_ref",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("area_code", sa.Text, nullable=False),
    )
    op.create_table(
        "person_ref",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
    )
    op.create_table(
        "household_status_ref",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("household_status_ref_household", "household_status_ref",
                    ["household_id", "changed_at"])

    op.create_table(
        "visit",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("team_id", sa.Uuid),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("analysis", JSONB, nullable=False),
        sa.Column("capitals", JSONB, nullable=False),
        sa.Column("problems", JSONB, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("next_visit_due", sa.Date, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        _at("recorded_at"),
    )
    op.create_index("visit_household", "visit", ["household_id", "visited_at"])

    op.create_table(
        "intervention",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("person_id", sa.Uuid),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("menu_code", sa.Text, sa.ForeignKey("menu_item.code"), nullable=False),
        sa.Column("agency_id", sa.Uuid),
        sa.Column("description", sa.Text),
        sa.Column("amount_thb", sa.Numeric(14, 2)),
        sa.Column("planned_for", sa.Date),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("supersedes", sa.Uuid, sa.ForeignKey("intervention.id")),
        sa.Column("recorded_by", sa.Text, nullable=False),
        _at("recorded_at"),
        sa.CheckConstraint("amount_thb IS NULL OR amount_thb >= 0", name="amount_not_negative"),
    )
    # An entry is superseded at most once: a second correction of it is refused.
    op.create_index("intervention_supersedes", "intervention", ["supersedes"], unique=True,
                    postgresql_where=sa.text("supersedes IS NOT NULL"))
    op.create_index("intervention_household", "intervention", ["household_id", "id"])
    op.create_index("intervention_area", "intervention",
                    [sa.text("area_code text_pattern_ops"), "id"])
    op.create_index("intervention_status", "intervention", ["status", "id"])

    op.create_table(
        "intervention_status_change",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("intervention_id", sa.Uuid, sa.ForeignKey("intervention.id"),
                  nullable=False),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("changed_by", sa.Text, nullable=False),
        _at("changed_at"),
    )
    op.create_index("intervention_status_change_household", "intervention_status_change",
                    ["household_id", "changed_at"])

    outbox_table_ddl(op)
    idempotency_table_ddl(op)
    consumer_tables_ddl(op)

    items = json.loads(MENUS.read_text(encoding="utf-8"))["items"]
    op.bulk_insert(menu, [{**item, "created_by": "catalogue"} for item in items])


def downgrade() -> None:
    for table in ("dead_letter", "processed_event", "idempotency_key", "outbox",
                  "intervention_status_change", "intervention", "visit",
                  "household_status_ref", "person_ref", "organization_ref", "household_ref", "menu_item"):
        op.drop_table(table)
