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
from shared.events.registry import HouseholdRegistered
from shared.indicators import Dimension

# One move-in at a time: the checks against stored house codes and citizen IDs hold until commit.
MOVE_LOCK = 0x5E9_1A9
MAX_REASONS_PER_ROW = 20


class ImportJobs:
    """The job rows and their rejected rows (ORM session; flushes, never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: UUID) -> ImportJob | None:
        return await self.session.get(ImportJob, job_id)

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
        self.household = f"import_household_{job_id.hex}"

    async def copy_in(self, source: AsyncIterable[bytes]) -> None:
        """Create the staging table and COPY the parsed file into it."""
        await self.pg.execute(
            f"CREATE UNLOGGED TABLE {self.stage} (LIKE import_stage INCLUDING DEFAULTS)"
        )
        await self.pg.copy_to_table(self.stage, source=source, columns=list(STAGE_COLUMNS))

    async def drop(self) -> None:
        for table in (self.household, self.group, self.stage):
            await self.pg.execute(f"DROP TABLE IF EXISTS {table}")

    async def check_and_move(
        self, *, scope_prefix: str, created_by: str, namespace: str, headers: dict[str, str]
    ) -> Outcome:
        """Reject what is wrong (with line, column, reason), then move the rest in."""
        pg = self.pg
        timings: dict[str, float] = {}

        async def step(name: str, sql: str, *args: Any) -> Any:
            started = time.perf_counter()
            result = await pg.fetchval(sql.format(**tables), *args)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            return result

        tables = {"stage": self.stage, "group": self.group, "household": self.household}
        job = self.job_id
        await pg.execute("SET LOCAL work_mem = '256MB'")
        await step("lock", "SELECT pg_advisory_xact_lock($1)", MOVE_LOCK)
        await step("analyze", "ANALYZE {stage}")
        await step("groups", _GROUPS)
        await step("analyze", "ANALYZE {group}")
        codes = [r["code"] for r in await pg.fetch("SELECT code FROM indicator")]
        known = "|".join(re.escape(c) for c in codes)
        indicators = rf"^\s*({known})\s*(\|\s*({known})\s*)*$"
        await step("check_rows", _CHECK_ROWS, job, scope_prefix, indicators, list(ROW_CHECKS))
        await step("check_same_household", _CHECK_SAME_HOUSEHOLD, job)
        await step("check_stored_households", _CHECK_STORED_HOUSEHOLDS, job)
        await step(
            "reject_whole_households", _REJECT_WHOLE_HOUSEHOLDS, job, list(HOUSEHOLD_COLUMNS)
        )
        await step("check_citizen_ids", _CHECK_CITIZEN_IDS, job)
        await step("households", _HOUSEHOLDS, job)
        households = await step("insert_households", _INSERT_HOUSEHOLDS, created_by)
        persons = await step("insert_persons", _INSERT_PERSONS, job)
        await step("history", _HISTORY, job, created_by)
        await step(
            "events",
            _EVENTS,
            f"{namespace}{HouseholdRegistered.type}",
            HouseholdRegistered.type,
            HouseholdRegistered.schema_version,
            json.dumps(headers),
            [d.value for d in Dimension],
        )
        rejected = await step(
            "count", "SELECT count(DISTINCT line) FROM import_rejection WHERE job_id = $1", job
        )
        return Outcome(
            rows_imported=int(persons or 0),
            rows_rejected=int(rejected or 0),
            households_imported=int(households or 0),
            timings=timings,
        )


# Rows group into households by house code, else by household key; the first row (by line)
# carries the household's fields, later rows may repeat them or leave them empty.
_GROUPS = """
CREATE UNLOGGED TABLE {group} AS
SELECT line, gkey, first_value(line) OVER (PARTITION BY gkey ORDER BY line) AS first_line
FROM (
    SELECT line, CASE WHEN house_code <> '' THEN 'h' || house_code
                      WHEN household_key <> '' THEN 'k' || household_key
                      ELSE 'l' || line END AS gkey
    FROM {stage}
) rows
"""

# The columns _CHECK_ROWS checks, in the order of its array of reasons.
ROW_CHECKS = (*HOUSEHOLD_COLUMNS, *PERSON_COLUMNS)

_REJECT = 'INSERT INTO import_rejection (job_id, line, "column", reason) '

# Every value of every row. Household fields are checked on the household's first row.
_CHECK_ROWS = (
    _REJECT
    + r"""
SELECT $1::uuid, c.line, ($4::text[])[i], c.reasons[i]
FROM (
SELECT s.line, ARRAY[
  CASE WHEN s.house_code <> '' AND s.house_code !~ '^[0-9]{{11}}$'
                      THEN 'a house code has 11 digits' END,
  CASE
      WHEN s.house_code = '' AND s.household_key = ''
        THEN 'give a house_code, or a household_key where the house code is not known'
      WHEN length(s.household_key) > 100 THEN 'at most 100 characters' END,
  CASE
      WHEN g.line <> g.first_line THEN NULL
      WHEN s.area_code = '' THEN 'required'
      WHEN s.area_code !~ '^([0-9]{{6}}|[0-9]{{8}})$'
        THEN 'a household lies in a village (8 digits) or a sub-district (6 digits)'
      WHEN a.code IS NULL THEN 'no village or sub-district ' || s.area_code
      WHEN NOT starts_with(s.area_code, $2::text)
        THEN 'area ' || s.area_code || ' is outside your scope' END,
  CASE WHEN length(s.address) > 500 THEN 'at most 500 characters' END,
  CASE
      WHEN s.survey_year = '' OR g.line <> g.first_line THEN NULL
      WHEN s.survey_year !~ '^[0-9]{{4}}$' THEN 'a Buddhist-era year from 2500 to 2700'
      WHEN s.survey_year::int NOT BETWEEN 2500 AND 2700
        THEN 'a Buddhist-era year from 2500 to 2700' END,
  CASE
      WHEN s.failed_indicators = '' OR g.line <> g.first_line THEN NULL
      WHEN s.failed_indicators ~ $3::text THEN NULL
      ELSE 'unknown indicator code(s): ' || (
        SELECT string_agg(btrim(c), ', ') FROM unnest(string_to_array(s.failed_indicators, '|')) c
        WHERE btrim(c) NOT IN (SELECT code FROM indicator)) || ' (codes like 2560-04, split by |)'
      END,
  CASE
      WHEN (s.lat = '' AND s.lon = '') OR g.line <> g.first_line THEN NULL
      WHEN s.lat = '' OR s.lon = '' THEN 'give both lat and lon, or neither'
      WHEN s.lat !~ '^-?[0-9]{{1,3}}(\.[0-9]+)?$' THEN 'a decimal number'
      WHEN s.lat::float8 NOT BETWEEN 5.6 AND 20.5 THEN 'a latitude inside Thailand' END,
  CASE
      WHEN s.lat = '' OR s.lon = '' OR g.line <> g.first_line THEN NULL
      WHEN s.lon !~ '^-?[0-9]{{1,3}}(\.[0-9]+)?$' THEN 'a decimal number'
      WHEN s.lon::float8 NOT BETWEEN 97.3 AND 105.7 THEN 'a longitude inside Thailand' END,
  CASE
      WHEN s.citizen_id = '' THEN NULL
      WHEN s.citizen_id_index IS NULL THEN 'a citizen ID has 13 digits'
      WHEN left(s.citizen_id, 1) = '0' THEN 'a citizen ID does not start with 0'
      WHEN NOT registry_citizen_id_ok(s.citizen_id) THEN 'the check digit is wrong' END,
  CASE WHEN length(s.title) > 50 THEN 'at most 50 characters' END,
  CASE WHEN s.first_name = '' THEN 'required'
                      WHEN length(s.first_name) > 200 THEN 'at most 200 characters' END,
  CASE WHEN s.last_name = '' THEN 'required'
                     WHEN length(s.last_name) > 200 THEN 'at most 200 characters' END,
  CASE WHEN lower(s.sex) IN ('', 'male', 'female', 'm', 'f', 'ชาย', 'หญิง') THEN NULL
               ELSE 'male or female (ชาย or หญิง)' END,
  CASE
      WHEN s.birth_date = '' THEN NULL
      WHEN NOT registry_date_ok(s.birth_date) THEN 'a date as YYYY-MM-DD'
      WHEN s.birth_date::date > current_date AND left(s.birth_date, 4)::int > 2400
        THEN 'the year looks Buddhist-era: give the year AD (BE - 543)'
      WHEN s.birth_date::date > current_date THEN 'a birth date cannot be in the future' END,
  CASE WHEN length(s.relation) > 50 THEN 'at most 50 characters' END,
  CASE WHEN lower(s.disability) IN
      ('', 'true', 'false', '1', '0', 'yes', 'no', 'y', 'n', 'ใช่', 'ไม่ใช่', 'มี', 'ไม่มี')
      THEN NULL ELSE 'true or false' END,
  CASE WHEN lower(s.welfare_card) IN
      ('', 'true', 'false', '1', '0', 'yes', 'no', 'y', 'n', 'ใช่', 'ไม่ใช่', 'มี', 'ไม่มี')
      THEN NULL ELSE 'true or false' END
] AS reasons
FROM {stage} s
JOIN {group} g ON g.line = s.line
LEFT JOIN area a ON a.code = s.area_code AND a.level IN ('subdistrict', 'village')
) c
CROSS JOIN LATERAL generate_subscripts(c.reasons, 1) AS i
WHERE num_nonnulls(VARIADIC c.reasons) > 0 AND c.reasons[i] IS NOT NULL
ON CONFLICT DO NOTHING
"""
)

# A later row of a household that gives a household field differently from its first row.
_CHECK_SAME_HOUSEHOLD = (
    _REJECT
    + """
SELECT $1::uuid, s.line, e.col,
       'differs from line ' || g.first_line || ', the household''s first row'
FROM {group} g
JOIN {stage} s ON s.line = g.line
JOIN {stage} f ON f.line = g.first_line
CROSS JOIN LATERAL (VALUES
  ('area_code', s.area_code, f.area_code),
  ('address', s.address, f.address),
  ('survey_year', s.survey_year, f.survey_year),
  ('failed_indicators', s.failed_indicators, f.failed_indicators),
  ('lat', s.lat, f.lat),
  ('lon', s.lon, f.lon),
  ('household_key', CASE WHEN s.house_code = '' THEN s.household_key ELSE '' END,
                    f.household_key)
) AS e(col, given, first)
WHERE g.line <> g.first_line AND e.given <> '' AND e.given <> e.first
ON CONFLICT DO NOTHING
"""
)

# Households registered before (a re-run of the same file, or the same household again).
_CHECK_STORED_HOUSEHOLDS = (
    _REJECT
    + """
SELECT $1::uuid, s.line, 'house_code', 'house code ' || s.house_code || ' is registered already'
FROM {stage} s JOIN household h ON h.house_code = s.house_code
WHERE s.house_code <> ''
UNION ALL
SELECT $1::uuid, g.line, 'household_key',
       'household ' || f.household_key || ' of area ' || f.area_code || ' was imported before'
FROM {group} g
JOIN {stage} f ON f.line = g.first_line
JOIN household h ON h.import_key = f.area_code || ':' || f.household_key
WHERE f.house_code = '' AND f.household_key <> ''
ON CONFLICT DO NOTHING
"""
)

# When a household's own fields are wrong, none of its rows can land.
_REJECT_WHOLE_HOUSEHOLDS = (
    _REJECT
    + """
SELECT $1::uuid, g.line, r."column", 'the household is rejected on line ' || g.first_line
FROM {group} g
JOIN import_rejection r ON r.job_id = $1 AND r.line = g.first_line AND r."column" = ANY($2)
WHERE g.line <> g.first_line
ON CONFLICT DO NOTHING
"""
)

# The same person twice in the file (the first row stays), or registered already.
_CHECK_CITIZEN_IDS = (
    _REJECT
    + """
SELECT $1::uuid, line, 'citizen_id', 'the same citizen ID is on line ' || first
FROM (
    SELECT line, first_value(line) OVER (PARTITION BY citizen_id_index ORDER BY line) AS first
    FROM {stage} WHERE citizen_id_index IS NOT NULL
) d
WHERE line <> first
UNION ALL
SELECT $1::uuid, s.line, 'citizen_id', 'the citizen ID is registered to another person already'
FROM {stage} s JOIN person p ON p.citizen_id_index = s.citizen_id_index
ON CONFLICT DO NOTHING
"""
)

# The households that keep at least one row, with their fields from their first row.
_HOUSEHOLDS = """
CREATE UNLOGGED TABLE {household} AS
SELECT m.id, m.first_line, m.members,
       nullif(f.house_code, '') AS house_code,
       CASE WHEN f.house_code = '' THEN f.area_code || ':' || f.household_key END AS import_key,
       f.area_code,
       nullif(f.address, '') AS address,
       nullif(f.lat, '')::float8 AS lat,
       nullif(f.lon, '')::float8 AS lon,
       nullif(f.survey_year, '')::int AS survey_year,
       ARRAY(SELECT DISTINCT btrim(c) FROM unnest(string_to_array(f.failed_indicators, '|')) c
             WHERE btrim(c) <> '' ORDER BY 1) AS failed_indicators,
       concat_ws(' ', nullif(f.house_code, ''), nullif(f.address, ''), m.names) AS search_text
FROM (
    SELECT registry_uuid7() AS id, g.first_line, count(*) AS members,
           string_agg(concat_ws(' ', nullif(s.title, ''), s.first_name, s.last_name), ' '
                      ORDER BY s.line) AS names
    FROM {group} g
    JOIN {stage} s ON s.line = g.line
    WHERE NOT EXISTS (SELECT 1 FROM import_rejection r WHERE r.job_id = $1 AND r.line = s.line)
    GROUP BY g.first_line
) m
JOIN {stage} f ON f.line = m.first_line
"""

_INSERT_HOUSEHOLDS = """
WITH inserted AS (
    INSERT INTO household (id, house_code, import_key, area_code, address, lat, lon, survey_year,
                           failed_indicators, status, search_text, version, created_by)
    SELECT id, house_code, import_key, area_code, address, lat, lon, survey_year,
           failed_indicators, 'target', search_text, 1, $1::text
    FROM {household}
    RETURNING 1
)
SELECT count(*) FROM inserted
"""

_TRUE = "('true', '1', 'yes', 'y', 'ใช่', 'มี')"

_INSERT_PERSONS = f"""
WITH inserted AS (
    INSERT INTO person (id, household_id, citizen_id_cipher, citizen_id_index, citizen_id_masked,
                        title, first_name, last_name, sex, birth_date, relation, disability,
                        welfare_card, version)
    SELECT registry_uuid7(), h.id, s.citizen_id_cipher, s.citizen_id_index, s.citizen_id_masked,
           nullif(s.title, ''), s.first_name, s.last_name,
           CASE WHEN lower(s.sex) IN ('male', 'm', 'ชาย') THEN 'male'
                WHEN lower(s.sex) IN ('female', 'f', 'หญิง') THEN 'female' END,
           nullif(s.birth_date, '')::date, nullif(s.relation, ''),
           lower(s.disability) IN {_TRUE}, lower(s.welfare_card) IN {_TRUE}, 1
    FROM {{group}} g
    JOIN {{household}} h ON h.first_line = g.first_line
    JOIN {{stage}} s ON s.line = g.line
    WHERE NOT EXISTS (SELECT 1 FROM import_rejection r WHERE r.job_id = $1 AND r.line = s.line)
    RETURNING 1
)
SELECT count(*) FROM inserted
"""

_HISTORY = """
WITH status AS (
    INSERT INTO status_change (id, household_id, from_status, to_status, reason, changed_by)
    SELECT registry_uuid7(), id, NULL, 'target', 'imported', $2::text FROM {household}
)
INSERT INTO audit_entry (id, household_id, entity, entity_id, action, changes, actor)
SELECT registry_uuid7(), id, 'household', id, 'imported',
       jsonb_build_object('import_id', $1::uuid, 'line', first_line, 'member_count', members),
       $2::text
FROM {household}
"""

# One registry.household.registered per new household, its envelope built as shared/events
# builds it (tests/registry/test_import_events.py holds the two to the same schema).
_EVENTS = """
INSERT INTO outbox (id, subject, payload, headers)
SELECT h.event_id, $1::text, jsonb_build_object(
    'id', h.event_id, 'type', $2::text, 'source', 'pinpoint/registry',
    'time', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'subject', h.id::text, 'area_code', h.area_code, 'schema_version', $3::int,
    'data', jsonb_build_object(
        'household_id', h.id, 'area_code', h.area_code, 'house_code', h.house_code,
        'status', 'target', 'survey_year', h.survey_year,
        'failed_indicators', to_jsonb(h.failed_indicators),
        'dimensions', to_jsonb(ARRAY(
            SELECT d FROM unnest($5::text[]) WITH ORDINALITY AS u(d, o)
            WHERE EXISTS (SELECT 1 FROM indicator i
                          WHERE i.code = ANY(h.failed_indicators) AND i.dimension = u.d)
            ORDER BY o)),
        'mentor_team_id', NULL, 'member_count', h.members)),
    $4::jsonb
FROM (SELECT registry_uuid7() AS event_id, * FROM {household}) h
"""
