"""Every foreign key of the services' tables is the first column(s) of an index, unless it is
named below with the reason none is needed.

A foreign key without one is read the slow way twice: by the code that looks rows up by it
(an intervention's status changes by their intervention read the whole table, 25 ms a request
with a million history entries, and slowed the national load), and by PostgreSQL whenever a
row it refers to is removed.
"""

from __future__ import annotations

from tests.conftest import Servers, rows_at

# (table, columns, referenced table) → why no index is needed.
WITHOUT_INDEX = {
    ("organization", ("parent_id",), "organization"): (
        "a few thousand organizations: one mentor team per sub-district and their agencies"
    ),
    ("household", ("mentor_team_id",), "organization"): (
        "left off on purpose (registry migration 0007): a team change rewrites the household in"
        " place; a team's households are listed within its own sub-district's"
    ),
    ("intervention", ("menu_code",), "menu_item"): (
        "the menu catalogue: a few hundred items, never removed; interventions are listed by"
        " household, area or status"
    ),
}

FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS referencing,
       c.confrelid::regclass::text AS referenced,
       array(
           SELECT a.attname
           FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
           ORDER BY k.n
       ) AS columns,
       EXISTS (
           SELECT 1 FROM pg_index i
           WHERE i.indrelid = c.conrelid
             AND i.indisvalid
             AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
             AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey
       ) AS indexed
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
"""


async def test_every_foreign_key_leads_an_index_or_is_named_with_its_reason(
    servers: Servers, registry_template: str, logbook_template: str, analytics_template: str
) -> None:
    seen, unindexed = set(), set()
    for database in (registry_template, logbook_template, analytics_template):
        for row in await rows_at(servers.database_url(database), FOREIGN_KEYS):
            key = (row["referencing"], tuple(row["columns"]), row["referenced"])
            seen.add(key)
            if not row["indexed"]:
                unindexed.add(key)
    # The look finds indexed keys too (it reads what it should).
    assert ("person", ("household_id",), "household") in seen - unindexed
    assert ("intervention_status_change", ("intervention_id",), "intervention") in seen
    assert unindexed == set(WITHOUT_INDEX), sorted(unindexed ^ set(WITHOUT_INDEX))
