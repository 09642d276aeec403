"""Every kind of bad row of a history import is rejected with its line, column and reason, and
changes nothing; the good rows beside it land."""

from __future__ import annotations

from uuid import uuid4

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, db_rows
from tests.logbook.history_support import csv_bytes, entry, import_file, rejected, visit
from tests.logbook.support import count, household, organization, set_status, wait_known


async def test_each_bad_row_is_rejected_with_its_column_and_reason(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    other_team = await organization(admin, area="240102")
    h = await household(admin, team)
    closed = await household(admin)
    await wait_known(logbook_settings, h, mentor_team_id=team)
    await set_status(admin, closed, "moved")
    await wait_known(logbook_settings, closed, status="moved")
    unknown = str(uuid4())
    bad: list[tuple[dict[str, str], str, str]] = [
        (visit(h, "a", kind=""), "kind", "required"),
        (visit(h, "b", kind="call"), "kind", "visit or intervention"),
        (visit("", "c"), "household_id", "required"),
        (visit("not-a-uuid", "d"), "household_id", "a household id is a UUID"),
        (visit(unknown, "e"), "household_id", f"no household {unknown}"),
        (visit(closed, "f"), "household_id", "the household is moved; its logbook is closed"),
        (visit(h, "g", team_id="team-7"), "team_id", "a team id is a UUID"),
        (visit(h, "h", team_id=other_team), "team_id", "not the household's mentor team"),
        (visit(h, "i", at=""), "at", "required"),
        (
            visit(h, "j", at="2025-03-05 10:30:00"),
            "at",
            "a time as ISO 8601 with its offset, e.g. 2024-03-05T10:30:00+07:00",
        ),
        (
            visit(h, "k", at="2025-02-30T10:00:00+07:00"),
            "at",
            "a time as ISO 8601 with its offset, e.g. 2024-03-05T10:30:00+07:00",
        ),
        (visit(h, "l", at="2099-01-01T00:00:00Z"), "at", "in the future"),
        (
            visit(h, "l2", at="2567-03-05T10:30:00+07:00"),
            "at",
            "the year looks Buddhist-era: give the year AD (BE - 543)",
        ),
        (visit(h, "m", menu_code="INC-02"), "menu_code", "only for an intervention"),
        (visit(h, "n", capitals="3425"), "capitals", "five digits 1-5: " + _CAPITALS),
        (visit(h, "o", capitals="34263"), "capitals", "five digits 1-5: " + _CAPITALS),
        (visit(h, "p", note="x" * 4001), "note", "at most 4000 characters"),
        (entry(h, "q", dimension=""), "dimension", "required"),
        (entry(h, "r", dimension="wealth"), "dimension", "one of " + _DIMENSIONS),
        (entry(h, "s", menu_code=""), "menu_code", "required"),
        (entry(h, "t", menu_code="INC-99"), "menu_code", "no such menu item"),
        (entry(h, "u", menu_code="HLT-01"), "menu_code", "belongs to the health dimension"),
        (entry(h, "v", amount_thb="-5"), "amount_thb", _AMOUNT),
        (entry(h, "w", amount_thb="12.345"), "amount_thb", _AMOUNT),
        (entry(h, "x", amount_thb="1,200"), "amount_thb", _AMOUNT),
        (
            entry(h, "y", status="done"),
            "status",
            "one of planned, in_progress, completed, cancelled",
        ),
        (entry(h, "z", completed_at=""), "completed_at", "required for a completed intervention"),
        (entry(h, "A", status="planned"), "completed_at", "only a completed intervention has one"),
        (
            entry(h, "B", completed_at="2025-03-01T00:00:00+07:00"),
            "completed_at",
            "before the intervention was recorded (at)",
        ),
        (entry(h, "C", capitals="34253"), "capitals", "only for a visit"),
        (entry(h, "D", note="หมายเหตุ"), "note", "only for a visit"),
        (entry(h, "E", description="x" * 4001), "description", "at most 4000 characters"),
        (entry(h, ""), "entry_key", "required"),
        (entry(h, "k" * 201), "entry_key", "at most 200 characters"),
        (entry(h, "good-1"), "entry_key", "the same entry_key of this household is on line 2"),
    ]
    rows = [entry(h, "good-1"), *(r for r, _, _ in bad), visit(h, "good-2", team_id=team)]
    before = await count(logbook_settings, "outbox")

    summary = await import_file(logbook_as("province_officer", "24"), csv_bytes(rows), limit=500)

    assert summary["state"] == "done", summary
    assert (summary["rows_read"], summary["rows_imported"]) == (len(rows), 2)
    assert summary["rows_rejected"] == len(bad)
    assert (summary["visits_imported"], summary["interventions_imported"]) == (1, 1)
    reasons = rejected(summary)
    for line, (_, column, reason) in enumerate(bad, start=3):
        assert reasons.get(line) == {column: reason}, (line, column, reasons.get(line))
    assert set(reasons) == set(range(3, 3 + len(bad)))
    # Only the two good rows changed anything.
    assert await count(logbook_settings, "visit") == 1
    assert await count(logbook_settings, "intervention") == 1
    assert await count(logbook_settings, "intervention_status_change") == 1
    assert await count(logbook_settings, "outbox") == before + 2
    keys = await db_rows(logbook_settings, "SELECT entry_key FROM imported_entry ORDER BY 1")
    assert [k["entry_key"] for k in keys] == ["good-1", "good-2"]


async def test_a_row_may_be_wrong_in_several_columns_at_once(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    h = await household(admin)
    await wait_known(logbook_settings, h)
    row = entry(h, "x", menu_code="NOPE-01", amount_thb="abc", at="yesterday")
    summary = await import_file(logbook_as("national_admin", "TH"), csv_bytes([row]))
    assert rejected(summary) == {
        2: {
            "at": "a time as ISO 8601 with its offset, e.g. 2024-03-05T10:30:00+07:00",
            "menu_code": "no such menu item",
            "amount_thb": _AMOUNT,
        }
    }
    # The rejected rows come by page, in line and column order.
    first = await import_file(logbook_as("national_admin", "TH"), csv_bytes([row]), limit=1)
    assert first["rejected"] == [{"line": 2, "column": "amount_thb", "reason": _AMOUNT}]
    assert first["next_cursor"] is not None
    assert await count(logbook_settings, "intervention") == 0


_CAPITALS = "human, physical, economic, natural, social"
_DIMENSIONS = "health, living, education, income, public_access"
_AMOUNT = "THB from 0 to 1,000,000,000 with at most 2 decimals"
