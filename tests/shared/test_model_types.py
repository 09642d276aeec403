"""The code's table definitions bind every integer as wide as the migrated column holds it.

A model that says `int` binds its value as a 4-byte integer whatever the column is: a history
file of more than 2 GiB (10,000,000 entries) counted its bytes into a `bigint` column through
such a model and failed with a 500 at national size.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

import services.analytics.repository
import services.logbook.models
import services.registry.models
import shared.consumer
import shared.idempotency
import shared.outbox
from tests.conftest import Servers, rows_at

# Every table definition the services' code binds values through (importing the model modules
# registers their tables in SQLModel's metadata).
assert services.logbook.models and services.registry.models and shared.outbox
METADATA = (
    SQLModel.metadata,
    services.analytics.repository.metadata,
    shared.consumer.metadata,
    shared.idempotency.metadata,
)
DATABASE_WIDTHS = {"smallint": 2, "integer": 4, "bigint": 8}


def _width(column: sa.Column[object]) -> int | None:
    kind = column.type
    if isinstance(kind, sa.BigInteger):
        return 8
    if isinstance(kind, sa.SmallInteger):
        return 2
    if isinstance(kind, sa.Integer):
        return 4
    return None


def _defined() -> dict[tuple[str, str], sa.Column[object]]:
    return {
        (table.name, column.name): column
        for metadata in METADATA
        for table in metadata.tables.values()
        for column in table.columns
    }


async def test_integer_columns_are_bound_as_wide_as_the_database_holds_them(
    servers: Servers, registry_template: str, logbook_template: str, analytics_template: str
) -> None:
    defined = _defined()
    compared, narrower = [], []
    for database in (registry_template, logbook_template, analytics_template):
        held = await rows_at(
            servers.database_url(database),
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type = ANY($1::text[])",
            list(DATABASE_WIDTHS),
        )
        for row in held:
            column = defined.get((row["table_name"], row["column_name"]))
            if column is None:
                continue  # a table the code reaches only through SQL text (import staging)
            compared.append(f"{row['table_name']}.{row['column_name']}")
            width = _width(column)
            if width is None or width < DATABASE_WIDTHS[row["data_type"]]:
                narrower.append(f"{compared[-1]}: {row['data_type']} bound as {column.type!r}")
    # The counters that failed are among those compared.
    assert {"import_job.bytes_read", "history_import_job.bytes_read"} <= set(compared)
    assert not narrower, narrower
