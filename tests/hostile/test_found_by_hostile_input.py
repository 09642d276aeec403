"""What the hostile-input tests found answered with a 500, now a field error that writes nothing.

A moment with no UTC date (a visit at year 1, +14:00), and U+0000 in the two texts that come
outside a JSON body and are stored: an import's file name and the reason for reading personal
data (reachable in process; an HTTP server in front refuses NUL in a header first).
"""

from __future__ import annotations

import pytest

from services.logbook.settings import LogbookSettings
from shared.auth import Role
from tests.gateway.conftest import Gateway
from tests.hostile.support import Call, Ledger, assert_problem_4xx, error_fields
from tests.hostile.writes import build_world
from tests.logbook.support import VISIT, intervention
from tests.registry.imports_support import CSV, csv_text, row

# Midnight of 1 January of year 1 at +14:00 is 31 December of year 0 in UTC (and the last
# second of 9999 at -23:59 is in year 10000): valid RFC 3339, but no date Python or PostgreSQL
# can hold once in UTC.
OUT_OF_RANGE = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59")


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_a_moment_outside_the_utc_years_is_a_field_error(
    gateway: Gateway,
    logbook_settings: LogbookSettings,
    ledger: Ledger,
    moment: str,
) -> None:
    world = await build_world(gateway, logbook_settings)
    mentor = gateway.as_(Role.mentor, "240101", world.team)
    completed = await mentor.post(
        "/v1/interventions",
        json=intervention(world.household, status="completed", completed_at="2026-11-20T10:00:00Z"),
    )
    assert completed.status_code == 201, completed.text
    calls = {
        "visited_at": Call(
            "POST", f"/v1/households/{world.household}/visits", {**VISIT, "visited_at": moment}
        ),
        "completed_at": Call(
            "POST",
            "/v1/interventions",
            intervention(world.household, status="completed", completed_at=moment),
        ),
        "corrected completed_at": Call(
            "POST",
            f"/v1/interventions/{completed.json()['id']}/corrections",
            {"completed_at": moment, "reason": "วันที่ผิด"},
        ),
    }
    for field, call in calls.items():
        problem = assert_problem_4xx(await ledger.send(mentor, call, field), field)
        assert problem["status"] == 422, problem
        assert error_fields(problem) == {field.split()[-1]}, problem


async def test_a_nul_in_an_imports_file_name_is_a_field_error(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    officer = gateway.as_(Role.province_officer, "24")
    call = Call(
        "POST",
        "/v1/imports/households?filename=list%00.csv",
        content=csv_text([row()]).encode(),
        headers=dict(CSV),
    )
    problem = assert_problem_4xx(await ledger.send(officer, call, "filename"), "filename")
    assert error_fields(problem) == {"query.filename"}, problem


async def test_a_nul_in_the_reason_for_reading_personal_data_is_a_field_error(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    ledger.changed()
    call = Call(
        "GET",
        f"/v1/households/{world.household}",
        headers={"X-Access-Reason": "ตรวจสอบ\x00สิทธิ".encode()},
    )
    problem = assert_problem_4xx(await ledger.send(world.admin, call, "reason"), "reason")
    assert error_fields(problem) == {"header.x-access-reason"}, problem
