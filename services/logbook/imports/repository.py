"""Every query a history import makes: the job rows, the staging COPY, the checks, the move-in.

The checks and the move-in are set-wise statements over the job's UNLOGGED staging tables, run
on the asyncpg connection underneath SQLAlchemy (COPY and multi-million-row statements gain
nothing from the ORM).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.domain.context import SOURCE
from services.logbook.domain.households import WRITABLE_STATUSES
from services.logbook.imports.csvformat import COLUMNS, STAGE_COLUMNS
from services.logbook.models import HistoryImportJob, HistoryImportRejection
from services.logbook.repository import HISTORY_MOVE_LOCK
from services.logbook.schemas import InterventionStatus
from shared.events import uuid7
from shared.events.logbook import InterventionRecorded, VisitRecorded
from shared.indicators import Dimension

# One move-in at a time: the checks against stored entry keys hold until commit. (A household's
# move to another area waits for it too, so that the entries it writes move along.)
MOVE_LOCK = HISTORY_MOVE_LOCK
STATUSES = [s.value for s in InterventionStatus]


class ImportJobs:
    """The job rows and their rejected rows (ORM session; flushes, never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: UUID) -> HistoryImportJob | None:
        return await self.session.get(HistoryImportJob, job_id)

    async def by_key(self, created_by: str, key: str) -> HistoryImportJob | None:
        """The caller's job made under this Idempotency-Key."""
        found = await self.session.exec(
            select(HistoryImportJob).where(
                HistoryImportJob.created_by == created_by, HistoryImportJob.idempotency_key == key
            )
        )
        return found.first()

    def add(self, job: HistoryImportJob) -> None:
        self.session.add(job)

    async def update(self, job_id: UUID, **values: Any) -> None:
        await self.session.exec(
            sa.update(HistoryImportJob)
            .where(col(HistoryImportJob.id) == job_id)
            .values(**values, updated_at=sa.func.now())
        )

    async def rejections(
        self, job_id: UUID, *, after: tuple[int, str] | None, limit: int
    ) -> Sequence[HistoryImportRejection]:
        query = (
            select(HistoryImportRejection)
            .where(HistoryImportRejection.job_id == job_id)
            .order_by(col(HistoryImportRejection.line), col(HistoryImportRejection.column))
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                sa.tuple_(col(HistoryImportRejection.line), col(HistoryImportRejection.column))
                > after
            )
        return (await self.session.exec(query)).all()


@dataclass(frozen=True)
class Outcome:
    rows_imported: int
    rows_rejected: int
    visits_imported: int
    interventions_imported: int
    timings: dict[str, float]


class Staging:
    """One job's staging tables on a raw asyncpg connection, inside the caller's transaction."""

    def __init__(self, pg: Any, job_id: UUID) -> None:
        self.pg = pg
        self.job_id = job_id
        self.stage = f"history_stage_{job_id.hex}"
        self.verdict = f"history_verdict_{job_id.hex}"

    async def copy_in(self, source: AsyncIterable[bytes]) -> None:
        """Create the staging table and COPY the parsed file into it."""
        await self.pg.execute(
            f"CREATE UNLOGGED TABLE {self.stage} (LIKE history_stage INCLUDING DEFAULTS)"
        )
        await self.pg.copy_to_table(self.stage, source=source, columns=list(STAGE_COLUMNS))

    async def drop(self) -> None:
        for table in (self.verdict, self.stage):
            await self.pg.execute(f"DROP TABLE IF EXISTS {table}")

    async def check_and_move(
        self,
        *,
        scope_prefix: str,
        recorded_by: str,
        namespace: str,
        headers: dict[str, str],
        follow_up_days: int,
    ) -> Outcome:
        """Reject what is wrong (with line, column, reason), then move the rest in.

        Run it inside a transaction: the lock, the checks and the move-in hold until commit.
        """
        pg = self.pg
        timings: dict[str, float] = {}
        tables = {"stage": self.stage, "verdict": self.verdict}

        async def step(name: str, sql: str, *args: Any) -> Any:
            started = time.perf_counter()
            result = await pg.fetchval(sql.format(**tables), *args)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            return result

        await pg.execute("SET LOCAL work_mem = '512MB'")
        await step("lock", "SELECT pg_advisory_xact_lock($1)", MOVE_LOCK)
        # Every id this import makes shares the first 80 bits of one fresh UUIDv7.
        ids = uuid7().hex[:20]
        await step("analyze", "ANALYZE {stage} (line, household_id, entry_key)")
        await step(
            "check",
            _VERDICT,
            scope_prefix,
            [d.value for d in Dimension],
            STATUSES,
            sorted(WRITABLE_STATUSES),
        )
        rejected = await step("reject", _REJECT, self.job_id, list(COLUMNS))
        await step("analyze", "ANALYZE {verdict} (reasons, kind)")
        visits = await step("insert_visits", _INSERT_VISITS, ids, recorded_by, follow_up_days)
        interventions = await step("insert_interventions", _INSERT_INTERVENTIONS, ids, recorded_by)
        await step("history", _STATUS_CHANGES, ids, recorded_by)
        await step("keys", _ENTRY_KEYS, ids, self.job_id)
        await step(
            "events",
            _EVENTS,
            ids,
            namespace,
            VisitRecorded.type,
            InterventionRecorded.type,
            VisitRecorded.schema_version,
            InterventionRecorded.schema_version,
            json.dumps(headers),
            SOURCE,
            follow_up_days,
        )
        return Outcome(
            rows_imported=int(visits or 0) + int(interventions or 0),
            rows_rejected=int(rejected or 0),
            visits_imported=int(visits or 0),
            interventions_imported=int(interventions or 0),
            timings=timings,
        )


# Each row typed where its own values allow, with one reason (or NULL) per column of the file
# in the order of COLUMNS: first what the row's own values say, then what the read model of
# households, the catalogue, the other rows of the file and the stored entry keys say.
# $1 the caller's area prefix, $2 the dimensions, $3 the statuses, $4 the writable statuses.
_VERDICT = r"""
CREATE UNLOGGED TABLE {verdict} AS
WITH typed AS (
  SELECT s.*,
         CASE WHEN pg_input_is_valid(s.household_id, 'uuid') THEN s.household_id::uuid END
           AS hid,
         CASE WHEN pg_input_is_valid(s.team_id, 'uuid') THEN s.team_id::uuid END AS tid,
         CASE WHEN logbook_moment_ok(s.at) THEN s.at::timestamptz END AS at_ts,
         CASE WHEN logbook_moment_ok(s.completed_at) THEN s.completed_at::timestamptz END
           AS done_ts,
         CASE WHEN s.amount_thb ~ '^[0-9]{{1,10}}(\.[0-9]{{1,2}})?$'
           THEN s.amount_thb::numeric(14, 2) END AS amount,
         CASE WHEN s.status = '' THEN 'planned' ELSE s.status END AS state
  FROM {stage} s
),
checked AS (
  SELECT t.*, h.area_code, h.mentor_team_id, h.status AS household_status,
         m.dimension AS menu_dimension, m.code AS menu_found,
         first_value(t.line) OVER (PARTITION BY t.hid, t.entry_key ORDER BY t.line) AS first_line,
         e.entry_id AS stored_entry,
         t.kind = 'visit' AND EXISTS (SELECT 1 FROM visit o WHERE o.household_id = t.hid)
           AS had_visits
  FROM typed t
  LEFT JOIN household_ref h ON h.id = t.hid AND starts_with(h.area_code, $1::text)
  LEFT JOIN menu_item m ON m.code = t.menu_code
  -- Keys stored of a household inside the caller's scope only: of another, a row says no more
  -- than that there is no such household.
  LEFT JOIN imported_entry e ON e.household_id = h.id AND e.entry_key = t.entry_key
)
SELECT line, kind, hid AS household_id, area_code, tid AS team_id, at_ts AS at,
       at AS at_text, dimension, menu_code, amount, state AS status, done_ts AS completed_at,
       nullif(description, '') AS description, capitals, nullif(note, '') AS note, entry_key,
       had_visits,
       nullif(ARRAY[
         CASE WHEN kind = '' THEN 'required'
              WHEN kind NOT IN ('visit', 'intervention') THEN 'visit or intervention' END,
         CASE WHEN household_id = '' THEN 'required'
              WHEN hid IS NULL THEN 'a household id is a UUID'
              WHEN area_code IS NULL THEN 'no household ' || hid
              WHEN household_status <> ALL($4::text[])
                THEN 'the household is ' || household_status || '; its logbook is closed' END,
         CASE WHEN team_id = '' THEN NULL
              WHEN tid IS NULL THEN 'a team id is a UUID'
              WHEN kind = 'visit' AND area_code IS NOT NULL
                   AND tid IS DISTINCT FROM mentor_team_id
                THEN 'not the household''s mentor team' END,
         CASE WHEN at = '' THEN 'required'
              WHEN at_ts IS NULL
                THEN 'a time as ISO 8601 with its offset, e.g. 2024-03-05T10:30:00+07:00'
              WHEN at_ts > now() + interval '5 minutes' THEN
                CASE WHEN substr(at, 1, 4)::int > 2400
                  THEN 'the year looks Buddhist-era: give the year AD (BE - 543)'
                  ELSE 'in the future' END
              END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN dimension <> '' THEN 'only for an intervention' END
              WHEN dimension = '' THEN 'required'
              WHEN dimension <> ALL($2::text[])
                THEN 'one of ' || array_to_string($2::text[], ', ') END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN menu_code <> '' THEN 'only for an intervention' END
              WHEN menu_code = '' THEN 'required'
              WHEN menu_found IS NULL THEN 'no such menu item'
              WHEN dimension = ANY($2::text[]) AND menu_dimension <> dimension
                THEN 'belongs to the ' || menu_dimension || ' dimension' END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN amount_thb <> '' THEN 'only for an intervention' END
              WHEN amount_thb = '' THEN NULL
              WHEN amount IS NULL OR amount > 1000000000
                THEN 'THB from 0 to 1,000,000,000 with at most 2 decimals' END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN status <> '' THEN 'only for an intervention' END
              WHEN state <> ALL($3::text[]) THEN 'one of ' || array_to_string($3::text[], ', ')
         END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN completed_at <> '' THEN 'only for an intervention' END
              WHEN state <> ALL($3::text[]) THEN NULL  -- the status's own reason says it
              WHEN completed_at = '' THEN
                CASE WHEN state = 'completed' THEN 'required for a completed intervention' END
              WHEN state <> 'completed' THEN 'only a completed intervention has one'
              WHEN done_ts IS NULL
                THEN 'a time as ISO 8601 with its offset, e.g. 2024-03-05T10:30:00+07:00'
              WHEN done_ts > now() + interval '5 minutes' THEN
                CASE WHEN substr(completed_at, 1, 4)::int > 2400
                  THEN 'the year looks Buddhist-era: give the year AD (BE - 543)'
                  ELSE 'in the future' END
              WHEN done_ts < at_ts THEN 'before the intervention was recorded (at)' END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'intervention' THEN
                CASE WHEN description <> '' THEN 'only for an intervention' END
              WHEN length(description) > 4000 THEN 'at most 4000 characters' END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'visit' THEN
                CASE WHEN capitals <> '' THEN 'only for a visit' END
              WHEN capitals <> '' AND capitals !~ '^[1-5]{{5}}$'
                THEN 'five digits 1-5: human, physical, economic, natural, social' END,
         CASE WHEN kind NOT IN ('visit', 'intervention') THEN NULL
              WHEN kind <> 'visit' THEN
                CASE WHEN note <> '' THEN 'only for a visit' END
              WHEN length(note) > 4000 THEN 'at most 4000 characters' END,
         CASE WHEN entry_key = '' THEN 'required'
              WHEN length(entry_key) > 200 THEN 'at most 200 characters'
              WHEN hid IS NULL THEN NULL
              WHEN first_line <> line
                THEN 'the same entry_key of this household is on line ' || first_line
              WHEN stored_entry IS NOT NULL
                THEN 'imported before (entry ' || stored_entry || ')' END
       ], '{{NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL}}') AS reasons
FROM checked
"""

# Every reason, as GET /v1/imports/logbook/{{id}} lists them; the count of rows rejected.
_REJECT = """
WITH rejected AS (
    INSERT INTO history_import_rejection (job_id, line, "column", reason)
    SELECT $1::uuid, v.line, ($2::text[])[i], v.reasons[i]
    FROM {verdict} v CROSS JOIN LATERAL generate_subscripts(v.reasons, 1) AS i
    WHERE v.reasons IS NOT NULL AND v.reasons[i] IS NOT NULL
    RETURNING line
)
SELECT count(DISTINCT line) FROM rejected
"""

# The five capitals of a visit as the API stores them ({} when not given).
_CAPITALS = """
CASE WHEN v.capitals = '' THEN '{{}}'::jsonb ELSE jsonb_build_object(
  'human', substr(v.capitals, 1, 1)::int, 'physical', substr(v.capitals, 2, 1)::int,
  'economic', substr(v.capitals, 3, 1)::int, 'natural', substr(v.capitals, 4, 1)::int,
  'social', substr(v.capitals, 5, 1)::int) END
"""
# Visits (kind 1), ids in line order. The 4 ท analysis is empty, as the API stores an empty one.
# The next visit is due the follow-up days of a visit without problems after the visit's own
# date (in the offset it was given with: a timestamp cast keeps the written date).
_INSERT_VISITS = (
    """
WITH inserted AS (
    INSERT INTO visit (id, household_id, area_code, team_id, visited_at, analysis, capitals,
                       problems, note, next_visit_due, recorded_by)
    SELECT logbook_import_id($1::text, 1, v.line), v.household_id, v.area_code, v.team_id, v.at,
           '{{"attitude": null, "skills": null, "resources": null, "way_out": null}}'::jsonb,
           """
    + _CAPITALS
    + """, '[]'::jsonb, v.note, (v.at_text::timestamp + make_interval(days => $3::int))::date,
           $2::text
    FROM {verdict} v
    WHERE v.reasons IS NULL AND v.kind = 'visit'
    ORDER BY v.line
    RETURNING 1
)
SELECT count(*) FROM inserted
"""
)

# Interventions (kind 2), recorded at the entry's time.
_INSERT_INTERVENTIONS = """
WITH inserted AS (
    INSERT INTO intervention (id, household_id, area_code, dimension, menu_code, description,
                              amount_thb, completed_at, status, recorded_by, recorded_at)
    SELECT logbook_import_id($1::text, 2, v.line), v.household_id, v.area_code, v.dimension,
           v.menu_code, v.description, v.amount, v.completed_at, v.status, $2::text, v.at
    FROM {verdict} v
    WHERE v.reasons IS NULL AND v.kind = 'intervention'
    ORDER BY v.line
    RETURNING 1
)
SELECT count(*) FROM inserted
"""

# Each new intervention's first status (kind 3), as POST /v1/interventions writes it.
_STATUS_CHANGES = """
INSERT INTO intervention_status_change (id, intervention_id, household_id, from_status,
                                        to_status, note, changed_by, changed_at)
SELECT logbook_import_id($1::text, 3, v.line), logbook_import_id($1::text, 2, v.line),
       v.household_id, NULL, v.status, NULL, $2::text, v.at
FROM {verdict} v
WHERE v.reasons IS NULL AND v.kind = 'intervention'
ORDER BY v.line
"""

_ENTRY_KEYS = """
INSERT INTO imported_entry (household_id, entry_key, kind, entry_id, job_id)
SELECT v.household_id, v.entry_key, v.kind,
       logbook_import_id($1::text, CASE v.kind WHEN 'visit' THEN 1 ELSE 2 END, v.line), $2::uuid
FROM {verdict} v
WHERE v.reasons IS NULL
"""

# One event per entry (kind 4, counted in the order they are written): area by area (a
# household's village or sub-district), household by household, each household's in the order
# they happened. Consumers need a household's events in order, not the country's; a history's
# worth of events grouped so lets a consumer's batch touch a few areas' households and totals
# instead of a different household and area with nearly every event (the analytics roll-up
# writes a row for each area, dimension and month a batch touches). The envelope and data as
# shared/events builds them for the API's writes
# (tests/logbook/test_history_import.py holds the two to the same schema). A visit is its
# household's first when the household had none before and none of the file is earlier. The
# document is written as JSON text and parsed once (as the registry's import does: about half
# the cost of jsonb_build_object); every value spliced in is a uuid, a number, a time written
# by to_char, digits, or a dimension, menu code or status checked above.
# $2 namespace, $3/$4 the types, $5/$6 their versions, $7 headers, $8 source, $9 follow-up days.
_MOMENT = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""
_EVENTS = f"""
WITH entries AS (
    SELECT v.line, v.kind, v.at, v.area_code, v.household_id, v.team_id, v.dimension,
           v.menu_code, v.amount, v.status,
           to_char(v.at AT TIME ZONE 'UTC', {_MOMENT}) AS time,
           to_char(v.completed_at AT TIME ZONE 'UTC', {_MOMENT}) AS completed,
           (v.at_text::timestamp + make_interval(days => $9::int))::date AS due,
           CASE WHEN v.capitals = '' THEN '{{{{}}}}' ELSE
             '{{{{"human": ' || substr(v.capitals, 1, 1) || ', "physical": '
             || substr(v.capitals, 2, 1) || ', "economic": ' || substr(v.capitals, 3, 1)
             || ', "natural": ' || substr(v.capitals, 4, 1) || ', "social": '
             || substr(v.capitals, 5, 1) || '}}}}' END AS capitals,
           CASE WHEN v.kind = 'visit' THEN
             NOT v.had_visits
             AND count(*) FILTER (WHERE v.kind = 'visit') OVER household_so_far = 1
           END AS first_visit,
           -- Counted in the order they are written, so the outbox's index on id grows at its
           -- right-hand edge instead of taking ids in the file's order all over it.
           logbook_import_id($1::text, 4, row_number() OVER written) AS event_id,
           logbook_import_id($1::text, CASE v.kind WHEN 'visit' THEN 1 ELSE 2 END, v.line)
             AS entry_id
    FROM {{verdict}} v
    WHERE v.reasons IS NULL
    -- Both windows and the insert's order are one sort (a household's area is its own).
    WINDOW written AS (ORDER BY v.area_code, v.household_id, v.at, v.line),
           household_so_far AS (PARTITION BY v.area_code, v.household_id ORDER BY v.at, v.line
                                ROWS UNBOUNDED PRECEDING)
)
INSERT INTO outbox (id, subject, payload, headers)
SELECT e.event_id,
       $2::text || CASE e.kind WHEN 'visit' THEN $3::text ELSE $4::text END,
       ('{{{{"id": "' || e.event_id || '", "type": "'
        || CASE e.kind WHEN 'visit' THEN $3::text ELSE $4::text END
        || '", "source": "' || $8::text || '", "time": "' || e.time || '", "subject": "'
        || e.entry_id || '", "area_code": "' || e.area_code || '", "schema_version": '
        || CASE e.kind WHEN 'visit' THEN $5::int ELSE $6::int END || ', "data": {{{{'
        || CASE e.kind WHEN 'visit' THEN
             '"visit_id": "' || e.entry_id || '", "household_id": "' || e.household_id
             || '", "area_code": "' || e.area_code || '", "team_id": '
             || coalesce('"' || e.team_id || '"', 'null') || ', "visited_at": "' || e.time
             || '", "first_visit": ' || e.first_visit || ', "problems": [], "capitals": '
             || e.capitals || ', "next_visit_due": "' || e.due || '", "supersedes": null'
           ELSE
             '"intervention_id": "' || e.entry_id || '", "household_id": "' || e.household_id
             || '", "area_code": "' || e.area_code || '", "person_id": null, "dimension": "'
             || e.dimension || '", "menu_code": "' || e.menu_code
             || '", "agency_id": null, "amount_thb": '
             || coalesce('"' || e.amount || '"', 'null') || ', "status": "' || e.status
             || '", "planned_for": null, "completed_at": '
             || coalesce('"' || e.completed || '"', 'null') || ', "recorded_at": "' || e.time
             || '", "supersedes": null'
           END
        || '}}}}}}}}')::jsonb,
       $7::jsonb
FROM entries e
ORDER BY e.area_code, e.household_id, e.at, e.line
"""
