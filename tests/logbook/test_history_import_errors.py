"""Files that cannot be read as the history format, callers who may not import, and replays:
a clear answer, and nothing imported."""

from __future__ import annotations

import os
from uuid import uuid4

import httpx
import pytest

from services.logbook.imports import repository
from services.logbook.imports.csvformat import COLUMNS
from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows
from tests.logbook.history_support import (
    CSV,
    PATH,
    csv_bytes,
    entry,
    finished,
    import_file,
    rejected,
    visit,
)
from tests.logbook.support import household, wait_known
from tests.registry.support import assert_problem

GOOD = csv_bytes([entry(str(uuid4()), "i-1")])
TABLES = ("visit", "intervention", "intervention_status_change", "imported_entry", "outbox")


async def _counts(settings: LogbookSettings) -> dict[str, int]:
    return {
        table: int((await db_rows(settings, f"SELECT count(*) FROM {table}"))[0][0])
        for table in TABLES
    }


async def _refused(
    client: httpx.AsyncClient, settings: LogbookSettings, body: bytes, says: str
) -> dict[str, object]:
    """POST a broken file: 422 naming the problem, the job failed, nothing written."""
    before = await _counts(settings)
    response = await client.post(PATH, content=body, headers=CSV)
    problem = assert_problem(response, 422)
    assert says in problem["detail"], problem
    assert "nothing was imported" in problem["detail"]
    job = await finished(client, response.headers["Location"].rsplit("/", 1)[1])
    assert job["state"] == "failed" and says in job["error"], job
    assert job["rows_imported"] == job["visits_imported"] == job["interventions_imported"] == 0
    assert await _counts(settings) == before
    staged = await db_rows(
        settings,
        "SELECT tablename FROM pg_tables"
        " WHERE tablename LIKE 'history\\_stage\\_%' OR tablename LIKE 'history\\_verdict\\_%'",
    )
    assert staged == [], "a failed import leaves no staging table behind"
    return problem


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        ("windows-874", GOOD.decode().encode("cp874"), "not UTF-8"),
        ("utf-16", GOOD.decode().encode("utf-16"), "UTF-16"),
        ("binary garbage", os.urandom(100_000), "line 1"),
        ("empty", b"", "the file is empty"),
        ("NUL bytes", GOOD + b"\x00\x00" * 10, "NUL"),
        ("a misspelt column", GOOD.replace(b"menu_code", b"menu_cod"), "did you mean"),
        ("too many fields", GOOD + b"1,2," * 10 + b"\r\n", "line 3: the row has 21 fields"),
        ("too few fields", GOOD + b"visit,x,y\r\n", "line 3: the row has 3 fields"),
        (
            "an unclosed quote",
            GOOD + b'visit,x,,"12 \r\n' + b"more text\r\n" * 200,
            "line 3: a quoted field is never closed",
        ),
    ],
)
async def test_an_unreadable_file_is_refused_whole(
    logbook_as: ClientFactory, logbook_settings: LogbookSettings, name: str, body: bytes, says: str
) -> None:
    await _refused(logbook_as("province_officer", "24"), logbook_settings, body, says)


async def test_a_missing_column_is_named(
    logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    body = ",".join(c for c in COLUMNS if c != "entry_key").encode() + b"\r\n"
    problem = await _refused(
        logbook_as("province_officer", "24"), logbook_settings, body, "missing column(s)"
    )
    assert problem["errors"] == [{"field": "line 1", "message": "missing column(s): entry_key"}]


async def test_a_broken_row_after_many_good_ones_imports_nothing(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    # Past the parser's first batches, so good rows were already COPYed into staging.
    h = await household(as_caller("national_admin", "TH"))
    await wait_known(logbook_settings, h)
    body = csv_bytes([visit(h, f"v-{n}") for n in range(12_000)]) + b"visit,x\r\n"
    assert len(body) > 1.2 * 1024 * 1024
    await _refused(
        logbook_as("province_officer", "24"), logbook_settings, body, "line 12002: the row has"
    )


async def test_only_csv_is_accepted(logbook_as: ClientFactory) -> None:
    officer = logbook_as("province_officer", "24")
    json_body = await officer.post(PATH, content=GOOD, headers={"content-type": "application/json"})
    assert_problem(json_body, 415)
    latin = await officer.post(
        PATH, content=GOOD, headers={"content-type": "text/csv; charset=iso-8859-1"}
    )
    assert_problem(latin, 415)
    utf8 = await officer.post(
        PATH, content=GOOD, headers={"content-type": "text/csv; charset=utf-8"}
    )
    assert utf8.status_code == 202, utf8.text


async def test_an_import_that_fails_while_moving_in_imports_nothing(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last statement of the move-in fails: the entries and keys before it roll back.
    h = await household(as_caller("national_admin", "TH"))
    await wait_known(logbook_settings, h)
    monkeypatch.setattr(repository, "_EVENTS", "SELECT 1 / 0")
    before = await _counts(logbook_settings)
    officer = logbook_as("province_officer", "24")
    response = await officer.post(
        PATH, content=csv_bytes([visit(h, "v"), entry(h, "i")]), headers=CSV
    )
    assert response.status_code == 202, response.text
    job = await finished(officer, response.json()["id"])
    assert job["state"] == "failed" and "imported nothing" in job["error"], job
    assert job["rejected"] == []
    assert await _counts(logbook_settings) == before


async def test_fields_with_quotes_commas_backslashes_and_line_breaks_arrive_as_written(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    h = await household(as_caller("national_admin", "TH"))
    await wait_known(logbook_settings, h)
    note = 'บ้าน "ทุ่งนา", C:\\temp\tแท็บ\nบรรทัดสอง'
    summary = await import_file(
        logbook_as("national_admin", "TH"), csv_bytes([visit(h, "v", note=note)])
    )
    assert summary["rows_imported"] == 1, summary
    (row,) = await db_rows(logbook_settings, "SELECT note FROM visit")
    assert row["note"] == note


@pytest.mark.parametrize(
    ("role", "area"),
    [
        ("district_officer", "2401"),
        ("subdistrict_team", "240101"),
        ("mentor", "240101"),
        ("analyst", "TH"),
    ],
)
async def test_only_officers_of_a_province_or_the_country_may_import(
    logbook_as: ClientFactory, logbook_settings: LogbookSettings, role: str, area: str
) -> None:
    response = await logbook_as(role, area).post(PATH, content=GOOD, headers=CSV)
    assert_problem(response, 403)
    jobs = await db_rows(logbook_settings, "SELECT count(*) FROM history_import_job")
    assert jobs[0][0] == 0


async def test_a_household_outside_the_callers_area_is_rejected_as_not_found(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    inside = await household(admin)
    bangkok = await household(admin, area_code="100101")
    await wait_known(logbook_settings, inside)
    await wait_known(logbook_settings, bangkok)
    missing = str(uuid4())
    # An entry of the Bangkok household, imported by whoever may: its key must not show
    # through the rejection of a row another province's officer sends for that household.
    national = await import_file(
        logbook_as("national_admin", "TH"), csv_bytes([visit(bangkok, "v")])
    )
    assert national["rows_imported"] == 1, national
    officer = logbook_as("province_officer", "24")
    summary = await import_file(
        officer, csv_bytes([visit(inside, "v"), visit(bangkok, "v"), visit(missing, "v")])
    )
    assert (summary["rows_imported"], summary["rows_rejected"]) == (1, 2)
    assert rejected(summary) == {
        3: {"household_id": f"no household {bangkok}"},
        4: {"household_id": f"no household {missing}"},
    }
    rows = await db_rows(logbook_settings, "SELECT household_id::text AS h FROM visit")
    assert sorted(r["h"] for r in rows) == sorted([inside, bangkok])
    # Another province's officer sees neither the job nor its rows.
    other = logbook_as("province_officer", "10")
    assert_problem(await other.get(f"{PATH}/{summary['id']}"), 404)


async def test_a_replayed_idempotency_key_answers_the_first_import(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    h = await household(as_caller("national_admin", "TH"))
    await wait_known(logbook_settings, h)
    officer = logbook_as("province_officer", "24")
    body = csv_bytes([visit(h, "v"), entry(h, "i")])
    key = {"Idempotency-Key": str(uuid4())}
    first = await import_file(officer, body, key)
    assert first["rows_imported"] == 2

    replay = await officer.post(PATH, content=body, headers={**CSV, **key})
    assert replay.status_code == 202, replay.text
    assert replay.json()["id"] == first["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == f"{PATH}/{first['id']}"
    other_file = await officer.post(
        PATH, content=csv_bytes([visit(h, "w")]), headers={**CSV, **key}
    )
    assert_problem(other_file, 409)
    jobs = await db_rows(logbook_settings, "SELECT count(*) FROM history_import_job")
    assert jobs[0][0] == 1
    # A key is the caller's own: another caller's same key is another import.
    national = logbook_as("national_admin", "TH")
    assert (await import_file(national, body, key))["id"] != first["id"]
