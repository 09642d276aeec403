"""Every query an import makes: the job rows, the staging COPY, the checks and the move-in.

The checks and the move-in are set-wise statements over the job's UNLOGGED staging table,
run on the asyncpg connection underneath SQLAlchemy (COPY and multi-million-row statements
gain nothing from the ORM).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.imports.csvformat import (
    HOUSEHOLD_COLUMNS,
    PERSON_COLUMNS,
    STAGE_COLUMNS,
)
from services.registry.models import ImportJob, ImportRejection
from shared.events import uuid7
from shared.events.registry import HouseholdRegistered
from shared.indicators import Dimension

# One move-in at a time: the checks against stored house codes and citizen IDs hold until commit.
MOVE_LOCK = 0x5E9_1A9


class ImportJobs:
    """The job rows and their rejected rows (ORM session; flushes, never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: UUID) -> ImportJob | None:
        return await self.session.get(ImportJob, job_id)

    async def by_key(self, created_by: str, key: str) -> ImportJob | None:
        """The caller's job made under this Idempotency-Key."""
        found = await self.session.exec(
            select(ImportJob).where(
                ImportJob.created_by == created_by, ImportJob.idempotency_key == key
            )
        )
        return found.first()

    def add(self, job: ImportJob) -> None:
        self.session.add(job)

    async def update(self, job_id: UUID, **values: Any) -> None:
        await self.session.exec(
            sa.update(ImportJob)
            .where(col(ImportJob.id) == job_id)
            .values(**values, updated_at=sa.func.now())
        )

    async def rejections(
        self, job_id: UUID, *, after: tuple[int, str] | None, limit: int
    ) -> Sequence[ImportRejection]:
        query = (
            select(ImportRejection)
            .where(ImportRejection.job_id == job_id)
            .order_by(col(ImportRejection.line), col(ImportRejection.column))
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                sa.tuple_(col(ImportRejection.line), col(ImportRejection.column)) > after
            )
        return (await self.session.exec(query)).all()


@dataclass(frozen=True)
class Outcome:
    rows_imported: int
    rows_rejected: int
    households_imported: int
    timings: dict[str, float]


class Staging:
    """One job's staging tables on a raw asyncpg connection, inside the caller's transaction."""

    def __init__(self, pg: Any, job_id: UUID) -> None:
        self.pg = pg
        self.job_id = job_id
        self.stage = f"import_stage_{job_id.hex}"
        self.group = f"import_group_{job_id.hex}"
        self.verdict = f"import_verdict_{job_id.hex}"
        self.household = f"import_household_{job_id.hex}"

    async def copy_in(self, source: AsyncIterable[bytes]) -> None:
        """Create the staging table and COPY the parsed file into it.

        The table's generated columns check each row's own values as COPY writes it.
        """
        await self.pg.execute(
            f"CREATE UNLOGGED TABLE {self.stage} "
            "(LIKE import_stage INCLUDING DEFAULTS INCLUDING GENERATED)"
        )
        await self.pg.copy_to_table(self.stage, source=source, columns=list(STAGE_COLUMNS))

    async def drop(self) -> None:
        for table in (self.household, self.verdict, self.group, self.stage):
            await self.pg.execute(f"DROP TABLE IF EXISTS {table}")

    async def check_and_move(
        self, *, scope_prefix: str, created_by: str, namespace: str, headers: dict[str, str]
    ) -> Outcome:
        """Reject what is wrong (with line, column, reason), then move the rest in.

        Run it inside a transaction: the lock, the checks and the move-in hold until commit.
        """
        pg = self.pg
        timings: dict[str, float] = {}
        tables = {
            "stage": self.stage,
            "group": self.group,
            "verdict": self.verdict,
            "household": self.household,
        }

        async def step(name: str, sql: str, *args: Any) -> Any:
            started = time.perf_counter()
            result = await pg.fetchval(sql.format(**tables), *args)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            return result

        async def insert(name: str, sql: str, *args: Any) -> int:
            """The rows an INSERT wrote, from its command tag (no RETURNING to count)."""
            started = time.perf_counter()
            tag = await pg.execute(sql.format(**tables), *args)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            return int(tag.rsplit(" ", 1)[1])

        job = self.job_id
        # The sorts and hashes over a whole national file (3.6 million rows) stay in memory;
        # a hash join kept in one batch also hands the persons over in line order, so the
        # inserts into their indexes on (household, id) and id stay at the right-hand edge.
        await pg.execute("SET LOCAL work_mem = '1GB'")
        # One process: a parallel plan of the checks cost up to 40% more CPU here for a little
        # less time, taken from the cores that keep answering requests meanwhile.
        await pg.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        await step("lock", "SELECT pg_advisory_xact_lock($1)", MOVE_LOCK)
        # Every id this import makes shares the first 80 bits of one fresh UUIDv7.
        ids = uuid7().hex[:20]
        # Statistics of the columns the plans below join and group on (not of every column).
        await step("analyze", "ANALYZE {stage} (line, gkey, failed_indicators, citizen_id_index)")
        codes = [r["code"] for r in await pg.fetch("SELECT code FROM indicator")]
        known = "|".join(re.escape(c) for c in codes)
        indicators = rf"^\s*({known})\s*(\|\s*({known})\s*)*$"
        await step("check_households", _GROUPS, scope_prefix, indicators, ids)
        await step("analyze", "ANALYZE {group} (gkey, first_line)")
        await step("check_rows", _VERDICT)
        rejected = await step("reject", _REJECT, job, list(ROW_CHECKS))
        await step("households", _HOUSEHOLDS)
        households = await insert("insert_households", _INSERT_HOUSEHOLDS, created_by)
        persons = await insert("insert_persons", _INSERT_PERSONS, ids)
        await step("history", _STATUS, ids, created_by)
        await step("history", _AUDIT, ids, created_by, job)
        await step(
            "events",
            _EVENTS,
            ids,
            f"{namespace}{HouseholdRegistered.type}",
            HouseholdRegistered.type,
            HouseholdRegistered.schema_version,
            json.dumps(headers),
            [d.value for d in Dimension],
        )
        return Outcome(
            rows_imported=int(persons or 0),
            rows_rejected=int(rejected or 0),
            households_imported=int(households or 0),
            timings=timings,
        )


# The columns the checks give reasons for, in the order of the staging table's `reasons` array
# (migrations 0005 and 0006), which holds what each row's own values say; a birth date that is
# not a date is read from the stored `birth` after the upload, so it is parsed once.
ROW_CHECKS = (*HOUSEHOLD_COLUMNS, *PERSON_COLUMNS)
_NONE8 = "'{{NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL}}'"
_NONE17 = "'{{" + ",".join(["NULL"] * len(ROW_CHECKS)) + "}}'"

# One row per household of the file: its first row (by line) carries its fields, and the
# reasons those fields are wrong: on the row itself, against the areas and indicators, or
# because the household is registered already. Rows group by house code, else household key.
# Indicator codes are read once per distinct value of the column (a few thousand in a file).
_GROUPS = f"""
CREATE UNLOGGED TABLE {{group}} AS
SELECT g.gkey, g.first_line, registry_import_id($3::text, 1, g.first_line) AS household_id,
       f.house_code, f.household_key, f.area_code, f.address,
       f.survey_year, f.failed_indicators, i.codes AS indicators, f.lat, f.lon,
       CASE WHEN hc.id IS NOT NULL
         THEN 'house code ' || f.house_code || ' is registered already' END AS house_stored,
       CASE WHEN ik.id IS NOT NULL
         THEN 'household ' || f.household_key || ' of area ' || f.area_code
              || ' was imported before' END AS key_stored,
       nullif(ARRAY[
         coalesce(f.reasons[1], CASE WHEN hc.id IS NOT NULL
           THEN 'house code ' || f.house_code || ' is registered already' END),
         coalesce(f.reasons[2], CASE WHEN ik.id IS NOT NULL
           THEN 'household ' || f.household_key || ' of area ' || f.area_code
                || ' was imported before' END),
         coalesce(f.reasons[3], CASE
           WHEN a.code IS NULL THEN 'no village or sub-district ' || f.area_code
           WHEN NOT starts_with(f.area_code, $1::text)
             THEN 'area ' || f.area_code || ' is outside your scope' END),
         f.reasons[4],
         f.reasons[5],
         i.reason,
         f.reasons[7],
         f.reasons[8]
       ], {_NONE8}) AS reasons
FROM (SELECT gkey, min(line) AS first_line FROM {{stage}} GROUP BY gkey) g
JOIN {{stage}} f ON f.line = g.first_line
JOIN (  -- OFFSET 0: worked out here, once per value, not after the join for every household
    SELECT failed_indicators,
           CASE
             WHEN failed_indicators = '' OR failed_indicators ~ $2::text THEN NULL
             ELSE 'unknown indicator code(s): ' || (
               SELECT string_agg(btrim(c), ', ')
               FROM unnest(string_to_array(failed_indicators, '|')) c
               WHERE btrim(c) NOT IN (SELECT code FROM indicator))
               || ' (codes like 2560-04, split by |)' END AS reason,
           ARRAY(SELECT DISTINCT btrim(c) FROM unnest(string_to_array(failed_indicators, '|')) c
                 WHERE btrim(c) <> '' ORDER BY 1) AS codes
    FROM (SELECT DISTINCT failed_indicators FROM {{stage}}) d
    OFFSET 0
) i ON i.failed_indicators = f.failed_indicators
LEFT JOIN area a ON a.code = f.area_code AND a.level IN ('subdistrict', 'village')
LEFT JOIN household hc ON f.house_code <> '' AND hc.house_code = f.house_code
LEFT JOIN household ik ON f.house_code = '' AND f.household_key <> ''
                      AND ik.import_key = f.area_code || ':' || f.household_key
"""

_TRUE = "('true', '1', 'yes', 'y', 'ใช่', 'มี')"


def _later(i: int, column: str, *, own: bool) -> str:
    """A household field on a later row: its own reason, else differing from the first row,
    else the first row's reason rejects it too."""
    parts = [f"s.reasons[{i}]"] if own else []
    parts.append(f"CASE WHEN s.{column} <> '' AND s.{column} <> g.{column} THEN {_DIFFERS} END")
    return f"coalesce({', '.join(parts)}, {_WHOLE.format(i=i)})"


_DIFFERS = "'differs from line ' || g.first_line || ', the household''s first row'"
_WHOLE = (
    "CASE WHEN g.reasons[{i}] IS NOT NULL"
    " THEN 'the household is rejected on line ' || g.first_line END"
)

_LATER_FIELDS = ("area_code", "address", "survey_year", "failed_indicators", "lat", "lon")
# The reasons of a row's own values that count on any row: house code, household key, address
# and the person's. (A later row's other household fields count only where they differ from
# the first row's, which are checked; so a later row that leaves them empty is fine.)
_OWN = (1, 2, 4, *range(len(HOUSEHOLD_COLUMNS) + 1, len(ROW_CHECKS) + 1))

# Enough to know a row has no reason at all without building its reasons: nothing wrong with
# its own values or its household's, no duplicate or stored citizen ID, a birth date that is a
# date and not in the future, and (on a later row of its household) the household's fields as
# on the first row. Any other row goes through the whole array below, which is the rule; this
# only skips it.
_CLEAN = f"""
g.reasons IS NULL AND d.first IS NULL AND p.id IS NULL
AND (s.reasons IS NULL OR ({" AND ".join(f"s.reasons[{i}] IS NULL" for i in _OWN)}))
AND (s.birth <= current_date OR s.birth_date = '')
AND (s.line = g.first_line OR (
  (s.house_code <> '' OR s.household_key = '' OR s.household_key = g.household_key)
  AND {" AND ".join(f"(s.{c} = '' OR s.{c} = g.{c})" for c in _LATER_FIELDS)}))
"""

# Every row with the reasons (one per column, NULL where fine) it is rejected for, and the
# person it makes when there are none. A household's fields are checked on its first row;
# a later row is rejected where it gives one differently or where the first row is rejected.
# A citizen ID twice in the file keeps its first row; one registered already is rejected.
_VERDICT = f"""
CREATE UNLOGGED TABLE {{verdict}} AS
SELECT s.line, g.first_line, g.household_id, s.citizen_id_cipher, s.citizen_id_index,
       s.citizen_id_masked,
       nullif(s.title, '') AS title, s.first_name, s.last_name,
       CASE WHEN lower(s.sex) IN ('male', 'm', 'ชาย') THEN 'male'
            WHEN lower(s.sex) IN ('female', 'f', 'หญิง') THEN 'female' END AS sex,
       s.birth, nullif(s.relation, '') AS relation,
       lower(s.disability) IN {_TRUE} AS disability,
       lower(s.welfare_card) IN {_TRUE} AS welfare_card,
       CASE WHEN {_CLEAN} THEN NULL ELSE nullif(
         CASE WHEN s.line = g.first_line THEN coalesce(g.reasons, {_NONE8}) ELSE ARRAY[
           coalesce(s.reasons[1], g.house_stored, {_WHOLE.format(i=1)}),
           coalesce(s.reasons[2],
             CASE WHEN s.house_code = '' AND s.household_key <> ''
                   AND s.household_key <> g.household_key THEN {_DIFFERS} END,
             g.key_stored, {_WHOLE.format(i=2)}),
           {_later(3, "area_code", own=False)},
           {_later(4, "address", own=True)},
           {_later(5, "survey_year", own=False)},
           {_later(6, "failed_indicators", own=False)},
           {_later(7, "lat", own=False)},
           {_later(8, "lon", own=False)}
         ] END
         || ARRAY[
           coalesce(s.reasons[9],
             CASE WHEN d.first IS NOT NULL THEN 'the same citizen ID is on line ' || d.first END,
             CASE WHEN p.id IS NOT NULL
               THEN 'the citizen ID is registered to another person already' END),
           s.reasons[10], s.reasons[11], s.reasons[12], s.reasons[13],
           coalesce(s.reasons[14], CASE
             WHEN s.birth IS NULL AND s.birth_date <> '' THEN 'a date as YYYY-MM-DD'
             WHEN s.birth > current_date AND extract(year FROM s.birth) > 2400
               THEN 'the year looks Buddhist-era: give the year AD (BE - 543)'
             WHEN s.birth > current_date THEN 'a birth date cannot be in the future' END),
           s.reasons[15], s.reasons[16], s.reasons[17]
         ], {_NONE17}) END AS reasons
FROM {{stage}} s
JOIN {{group}} g ON g.gkey = s.gkey
LEFT JOIN (  -- hashed, not sorted: only the citizen IDs that are in the file more than once
  SELECT citizen_id_index, min(line) AS first
  FROM {{stage}} WHERE citizen_id_index IS NOT NULL
  GROUP BY citizen_id_index HAVING count(*) > 1
) d ON d.citizen_id_index = s.citizen_id_index AND d.first <> s.line
LEFT JOIN person p ON p.citizen_id_index = s.citizen_id_index
"""

# Every reason, as GET /v1/imports/{{id}} lists them; the count of rows rejected.
_REJECT = """
WITH rejected AS (
    INSERT INTO import_rejection (job_id, line, "column", reason)
    SELECT $1::uuid, v.line, ($2::text[])[i], v.reasons[i]
    FROM {verdict} v CROSS JOIN LATERAL generate_subscripts(v.reasons, 1) AS i
    WHERE v.reasons IS NOT NULL AND v.reasons[i] IS NOT NULL
    RETURNING line
)
SELECT count(DISTINCT line) FROM rejected
"""

# The households that keep at least one row; ids come from their first line (kind 1).
_HOUSEHOLDS = """
CREATE UNLOGGED TABLE {household} AS
SELECT g.household_id AS id, g.first_line, m.members,
       nullif(g.house_code, '') AS house_code,
       CASE WHEN g.house_code = '' THEN g.area_code || ':' || g.household_key END AS import_key,
       g.area_code,
       nullif(g.address, '') AS address,
       nullif(g.lat, '')::float8 AS lat,
       nullif(g.lon, '')::float8 AS lon,
       nullif(g.survey_year, '')::int AS survey_year,
       g.indicators AS failed_indicators,
       concat_ws(' ', nullif(g.house_code, ''), nullif(g.address, ''), m.names) AS search_text
FROM (
    SELECT first_line, count(*) AS members,
           string_agg(concat_ws(' ', title, first_name, last_name), ' ' ORDER BY line) AS names
    FROM {verdict} WHERE reasons IS NULL
    GROUP BY first_line
) m
JOIN {group} g ON g.first_line = m.first_line
ORDER BY g.first_line
"""

_INSERT_HOUSEHOLDS = """
INSERT INTO household (id, house_code, import_key, area_code, address, lat, lon, survey_year,
                       failed_indicators, status, search_text, version, created_by)
SELECT id, house_code, import_key, area_code, address, lat, lon, survey_year,
       failed_indicators, 'target', search_text, 1, $1::text
FROM {household}
"""

# Persons (kind 2) of rows without a reason, in their households (kind 1, by first line).
_INSERT_PERSONS = """
INSERT INTO person (id, household_id, citizen_id_cipher, citizen_id_index, citizen_id_masked,
                    title, first_name, last_name, sex, birth_date, relation, disability,
                    welfare_card, version)
SELECT registry_import_id($1::text, 2, line), household_id, citizen_id_cipher,
       citizen_id_index, citizen_id_masked, title, first_name, last_name, sex, birth,
       relation, disability, welfare_card, 1
FROM {verdict}
WHERE reasons IS NULL
"""

# Each new household's first status (kind 3) and its audit entry (kind 4).
_STATUS = """
INSERT INTO status_change (id, household_id, from_status, to_status, reason, changed_by)
SELECT registry_import_id($1::text, 3, first_line), id, NULL, 'target', 'imported', $2::text
FROM {household}
"""

_AUDIT = """
INSERT INTO audit_entry (id, household_id, entity, entity_id, action, changes, actor)
SELECT registry_import_id($1::text, 4, first_line), id, 'household', id, 'imported',
       ('{{"import_id": "' || $3::uuid || '", "line": ' || first_line || ', "member_count": '
        || members || '}}')::jsonb,
       $2::text
FROM {household}
"""

# One registry.household.registered (kind 5) per new household, its envelope as shared/events
# builds it (tests/registry/test_import_events.py holds the two to the same schema). The
# document is written as JSON text and parsed once, which costs PostgreSQL about half of
# building it with jsonb_build_object: every value spliced in is a uuid, a number, digits
# checked above, or JSON made by to_json. Dimensions come once per distinct set of indicators.
_EVENTS = """
WITH kinds AS MATERIALIZED (
    SELECT failed_indicators, to_json(failed_indicators)::text AS codes, to_json(ARRAY(
        SELECT d FROM unnest($6::text[]) WITH ORDINALITY AS u(d, o)
        WHERE EXISTS (SELECT 1 FROM indicator i
                      WHERE i.code = ANY(x.failed_indicators) AND i.dimension = u.d)
        ORDER BY o))::text AS dimensions
    FROM (SELECT DISTINCT failed_indicators FROM {household}) x
),
envelope AS (
    SELECT ', "type": ' || to_json($3::text) || ', "source": "pinpoint/registry", "time": "'
           || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           || '", "subject": "' AS head
)
INSERT INTO outbox (id, subject, payload, headers)
SELECT h.event_id, $2::text, (
    '{{"id": "' || h.event_id || '"' || e.head || h.id || '", "area_code": "' || h.area_code
    || '", "schema_version": ' || $4::int || ', "data": {{"household_id": "' || h.id
    || '", "area_code": "' || h.area_code || '", "house_code": '
    || coalesce('"' || h.house_code || '"', 'null') || ', "status": "target", "survey_year": '
    || coalesce(h.survey_year::text, 'null') || ', "failed_indicators": ' || k.codes
    || ', "dimensions": ' || k.dimensions || ', "mentor_team_id": null, "member_count": '
    || h.members || '}}}}')::jsonb,
    $5::jsonb
FROM (SELECT registry_import_id($1::text, 5, first_line) AS event_id, * FROM {household}) h
JOIN kinds k ON k.failed_indicators = h.failed_indicators
CROSS JOIN envelope e
ORDER BY h.first_line
"""
