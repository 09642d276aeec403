"""Importing the target list: valid rows land, each bad row is explained and changes nothing."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from fastapi import FastAPI

from services.registry.settings import RegistrySettings
from shared.auth import Caller, Role
from tests.conftest import ClientFactory, registry_rows
from tests.registry.imports_support import CSV, csv_bytes, finished, import_file, rejected, row
from tests.registry.support import citizen_id, counts, wrong_check_digit


async def _persons(settings: RegistrySettings) -> list[dict[str, Any]]:
    rows = await registry_rows(
        settings,
        """SELECT h.house_code, h.import_key, h.area_code, h.failed_indicators, h.survey_year,
                  h.status, h.created_by, p.first_name, p.last_name, p.sex, p.birth_date,
                  p.disability, p.welfare_card, p.citizen_id_masked
           FROM person p JOIN household h ON h.id = p.household_id ORDER BY p.first_name""",
    )
    return [dict(r) for r in rows]


async def test_valid_rows_land_grouped_into_households(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    head, spouse, child = citizen_id(), citizen_id(), citizen_id()
    rows = [
        row(house_code="24010100001", citizen_id=head, first_name="ก"),
        row(
            house_code="24010100001",
            area_code="",
            address="",
            survey_year="",
            failed_indicators="",
            citizen_id=spouse,
            first_name="ข",
            sex="หญิง",
            title="นาง",
            relation="spouse",
        ),
        row(household_key="HH-7", area_code="240102", citizen_id="", first_name="ค"),
        row(house_code="24010100001", citizen_id=child, first_name="ง", birth_date="2015-02-28"),
    ]
    summary = await import_file(officer, csv_bytes(rows))
    assert summary["state"] == "done", summary
    assert summary["rows_read"] == 4
    assert summary["rows_imported"] == 4, summary["rejected"]
    assert summary["households_imported"] == 2
    assert summary["rows_rejected"] == 0 and summary["rejected"] == []

    persons = await _persons(registry_settings)
    assert [p["first_name"] for p in persons] == ["ก", "ข", "ค", "ง"]
    first, second, keyed, last = persons
    assert first["house_code"] == second["house_code"] == last["house_code"] == "24010100001"
    assert first["area_code"] == second["area_code"] == "240101"
    assert first["failed_indicators"] == ["2560-04", "2560-20"]
    assert first["status"] == "target" and first["survey_year"] == 2566
    assert first["created_by"] == "province_officer@24"
    assert second["sex"] == "female" and second["citizen_id_masked"].endswith(spouse[-1])
    assert keyed["house_code"] is None and keyed["import_key"] == "240102:HH-7"
    assert keyed["citizen_id_masked"] is None
    assert first["welfare_card"] is True and first["disability"] is False

    # Through the API, as any household: members, unmasked citizen ID for an officer.
    page = (await officer.get("/v1/households", params={"area_code": "240101"})).json()
    (household,) = [h for h in page["items"] if h["house_code"] == "24010100001"]
    assert household["member_count"] == 3
    assert household["dimensions"] == ["health", "income"]
    detail = (await officer.get(f"/v1/households/{household['id']}")).json()
    assert {m["citizen_id"] for m in detail["members"]} == {head, spouse, child}
    found = await officer.post(
        "/v1/persons/lookup", json={"citizen_id": spouse, "reason": "import check"}
    )
    assert found.status_code == 200 and found.json()["first_name"] == "ข"
    searched = (await officer.get("/v1/households", params={"q": "ใจดี"})).json()
    assert len(searched["items"]) == 2


async def test_each_kind_of_bad_row_is_rejected_with_line_column_and_reason(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("national_admin", "TH")
    twice = citizen_id()
    good = citizen_id()
    rows = [
        row(citizen_id=good, house_code="24010100002"),  # line 2: lands
        row(area_code="99999999", house_code="24010100003"),  # 3
        row(area_code="24", house_code="24010100004"),  # 4: a province, not a village
        row(citizen_id=wrong_check_digit(citizen_id()), house_code="24010100005"),  # 5
        row(citizen_id="12345", house_code="24010100006"),  # 6
        row(failed_indicators="2560-04|2560-99", house_code="24010100007"),  # 7
        row(birth_date="1970-02-30", house_code="24010100008"),  # 8
        row(birth_date="2099-01-01", house_code="24010100009"),  # 9
        row(birth_date="2530-01-01", house_code="24010100010"),  # 10: Buddhist-era year
        row(first_name="", house_code="24010100011"),  # 11
        row(sex="x", house_code="24010100012"),  # 12
        row(survey_year="1999", house_code="24010100013"),  # 13
        row(house_code="123", household_key=""),  # 14
        row(house_code="", household_key=""),  # 15
        row(citizen_id=twice, house_code="24010100016"),  # 16: lands (first of two)
        row(citizen_id=twice, house_code="24010100017"),  # 17: the same person again
        row(disability="maybe", house_code="24010100018"),  # 18
        row(lat="13.7", lon="", house_code="24010100019"),  # 19
        row(lat="13.7", lon="150.1", house_code="24010100020"),  # 20
        row(area_code="", house_code="24010100021"),  # 21
    ]
    summary = await import_file(officer, csv_bytes(rows))
    assert summary["state"] == "done", summary
    assert summary["rows_read"] == 20
    assert summary["rows_imported"] == 2
    assert summary["households_imported"] == 2
    assert summary["rows_rejected"] == 18
    by_line = rejected(summary)
    assert set(by_line) == set(range(3, 22)) - {16}
    assert by_line[3] == {"area_code": "no village or sub-district 99999999"}
    assert "village (8 digits) or a sub-district" in by_line[4]["area_code"]
    assert by_line[5] == {"citizen_id": "the check digit is wrong"}
    assert by_line[6] == {"citizen_id": "a citizen ID has 13 digits"}
    assert by_line[7]["failed_indicators"].startswith("unknown indicator code(s): 2560-99 (")
    assert by_line[8] == {"birth_date": "a date as YYYY-MM-DD"}
    assert by_line[9] == {"birth_date": "a birth date cannot be in the future"}
    assert "Buddhist-era" in by_line[10]["birth_date"]
    assert by_line[11] == {"first_name": "required"}
    assert "male or female" in by_line[12]["sex"]
    assert "2500 to 2700" in by_line[13]["survey_year"]
    assert by_line[14] == {"house_code": "a house code has 11 digits"}
    assert "household_key" in by_line[15]
    assert by_line[17] == {"citizen_id": "the same citizen ID is on line 16"}
    assert by_line[18] == {"disability": "true or false"}
    assert "both lat and lon" in by_line[19]["lat"]
    assert "longitude inside Thailand" in by_line[20]["lon"]
    assert by_line[21] == {"area_code": "required"}
    # No reason repeats a citizen ID (they are personal data).
    assert not any(twice in r["reason"] for r in summary["rejected"])

    stored = {
        r["house_code"]
        for r in await registry_rows(registry_settings, "SELECT house_code FROM household")
    }
    assert stored == {"24010100002", "24010100016"}
    assert (await counts(registry_settings))["person"] == 2


async def test_a_household_whose_own_fields_are_wrong_lands_with_none_of_its_rows(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("national_admin", "TH")
    rows = [
        row(house_code="24010100030", area_code="99999999"),  # 2: the household is wrong
        row(house_code="24010100030", area_code=""),  # 3
        row(house_code="24010100031"),  # 4: lands
        row(house_code="24010100031", area_code="240102"),  # 5: differs from its first row
        row(house_code="24010100032", citizen_id="1"),  # 6: the only member is wrong
    ]
    summary = await import_file(officer, csv_bytes(rows))
    by_line = rejected(summary)
    assert by_line[2] == {"area_code": "no village or sub-district 99999999"}
    assert by_line[3] == {"area_code": "the household is rejected on line 2"}
    assert by_line[5] == {"area_code": "differs from line 4, the household's first row"}
    assert by_line[6] == {"citizen_id": "a citizen ID has 13 digits"}
    assert summary["households_imported"] == 1 and summary["rows_imported"] == 1
    assert (await counts(registry_settings))["household"] == 1


async def test_a_rerun_of_the_same_file_imports_nothing_twice(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    rows = [
        row(house_code="24010100040"),
        row(house_code="24010100040", area_code="", first_name="สมหญิง"),
        row(household_key="K-1", citizen_id=""),
        row(household_key="K-2"),
    ]
    body = csv_bytes(rows)
    first = await import_file(officer, body)
    assert first["households_imported"] == 3 and first["rows_imported"] == 4
    before = await counts(registry_settings)

    again = await import_file(officer, body)
    assert again["state"] == "done"
    assert again["rows_imported"] == 0 and again["households_imported"] == 0
    assert again["rows_rejected"] == 4
    by_line = rejected(again)
    assert by_line[2]["house_code"] == "house code 24010100040 is registered already"
    assert by_line[4]["household_key"] == "household K-1 of area 240101 was imported before"
    assert "registered to another person" in by_line[5]["citizen_id"]
    assert await counts(registry_settings) == before


async def test_a_citizen_id_registered_through_the_api_is_rejected(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    taken = citizen_id()
    registered = await officer.post(
        "/v1/households",
        json={
            "area_code": "240101",
            "members": [{"first_name": "ก", "last_name": "ข", "citizen_id": taken}],
        },
    )
    assert registered.status_code == 201, registered.text
    summary = await import_file(officer, csv_bytes([row(household_key="A", citizen_id=taken)]))
    assert rejected(summary) == {
        2: {"citizen_id": "the citizen ID is registered to another person already"}
    }
    assert (await counts(registry_settings))["household"] == 1


async def test_with_and_without_a_bom(as_caller: ClientFactory) -> None:
    officer = as_caller("province_officer", "24")
    plain = await import_file(officer, csv_bytes([row(house_code="24010100050")]))
    with_bom = await import_file(officer, csv_bytes([row(house_code="24010100051")], bom=True))
    assert plain["rows_imported"] == with_bom["rows_imported"] == 1


async def test_rejected_rows_come_by_page(as_caller: ClientFactory) -> None:
    officer = as_caller("province_officer", "24")
    rows = [row(house_code=f"240101{n:05d}", first_name="") for n in range(7)]
    summary = await import_file(officer, csv_bytes(rows), limit=3)
    assert summary["rows_rejected"] == 7
    lines = [r["line"] for r in summary["rejected"]]
    cursor = summary["next_cursor"]
    while cursor:
        page = (
            await officer.get(f"/v1/imports/{summary['id']}", params={"limit": 3, "cursor": cursor})
        ).json()
        lines += [r["line"] for r in page["rejected"]]
        cursor = page["next_cursor"]
    assert lines == list(range(2, 9))


async def test_a_cursor_this_service_did_not_make_is_a_400(as_caller: ClientFactory) -> None:
    officer = as_caller("province_officer", "24")
    summary = await import_file(officer, csv_bytes([row(house_code="24010100060", first_name="")]))
    forged = [
        '{"line": Infinity, "column": "a"}',
        '{"line": 1e400, "column": "a"}',
        '{"line": 2.5, "column": "a"}',
        '{"line": "2", "column": "a"}',
        '{"line": 9223372036854775808, "column": "a"}',
        '{"line": 2, "column": "\\u0000"}',
        '{"line": 2, "column": "\\ud800"}',
        '{"line": 2, "column": 7}',
        '{"line": 2}',
    ]
    for text in forged:
        cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        response = await officer.get(f"/v1/imports/{summary['id']}", params={"cursor": cursor})
        assert response.status_code == 400, (text, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await officer.get(f"/v1/imports/{summary['id']}")).status_code == 200


async def test_a_replayed_idempotency_key_answers_the_first_import(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    body = csv_bytes([row(house_code="24010100070"), row(house_code="24010100071")])
    key = {"Idempotency-Key": "target-list-2567"}
    sent = await officer.post("/v1/imports/households", content=body, headers={**CSV, **key})
    assert sent.status_code == 202, sent.text
    first = await finished(officer, sent.json()["id"])
    assert first["rows_imported"] == 2

    again = await officer.post("/v1/imports/households", content=body, headers={**CSV, **key})
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == f"/v1/imports/{first['id']}"
    other_file = await officer.post(
        "/v1/imports/households",
        content=csv_bytes([row(house_code="24010100072")]),
        headers={**CSV, **key},
    )
    assert other_file.status_code == 409, other_file.text
    assert other_file.headers["content-type"] == "application/problem+json"
    jobs = await registry_rows(registry_settings, "SELECT count(*) AS n FROM import_job")
    assert jobs[0]["n"] == 1
    assert (await counts(registry_settings))["household"] == 2


async def test_a_failed_upload_leaves_its_key_free_for_the_corrected_file(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    key = {"Idempotency-Key": "target-list-retry"}
    broken = await officer.post(
        "/v1/imports/households", content=b"house_code,area_code\n1,2,3\n", headers={**CSV, **key}
    )
    assert broken.status_code == 422, broken.text
    good = csv_bytes([row(house_code="24010100080")])
    sent = await officer.post("/v1/imports/households", content=good, headers={**CSV, **key})
    assert sent.status_code == 202, sent.text
    assert "Idempotent-Replayed" not in sent.headers
    assert (await finished(officer, sent.json()["id"]))["rows_imported"] == 1


async def test_a_job_its_stopped_service_left_running_frees_its_key(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    key = {"Idempotency-Key": "target-list-crash"}
    body = csv_bytes([row(house_code="24010100090")])
    sent = await officer.post("/v1/imports/households", content=body, headers={**CSV, **key})
    first = await finished(officer, sent.json()["id"])

    async def left_running(moved: str) -> None:
        """As a service stopped in the middle of the upload leaves its job."""
        await registry_rows(
            registry_settings,
            "UPDATE import_job SET state = 'running', body_sha256 = NULL, finished_at = NULL,"
            f" updated_at = now() - interval '{moved}' WHERE id = $1",
            UUID(first["id"]),
        )

    # Its row moved a moment ago: it may still be uploading somewhere.
    await left_running("5 seconds")
    busy = await officer.post("/v1/imports/households", content=body, headers={**CSV, **key})
    assert busy.status_code == 409, busy.text
    # Its row has not moved for two minutes: no process runs it any more.
    await left_running("2 minutes")
    again = await officer.post("/v1/imports/households", content=body, headers={**CSV, **key})
    assert again.status_code == 202, again.text
    assert again.json()["id"] != first["id"] and "Idempotent-Replayed" not in again.headers
    assert (await finished(officer, again.json()["id"]))["state"] == "done"
    stopped = (await officer.get(f"/v1/imports/{first['id']}")).json()
    assert stopped["state"] == "failed" and "stopped with its service" in stopped["error"]


async def test_a_job_taken_for_abandoned_while_it_moves_in_imports_nothing(
    registry_app: FastAPI, registry_settings: RegistrySettings
) -> None:
    importer = registry_app.state.importer
    caller = Caller(subject="officer", role=Role.province_officer, area="24")
    job_id = await importer.create(caller, "late.csv")

    async def body() -> AsyncIterator[bytes]:
        yield csv_bytes([row(house_code="24010100091")])

    await importer.stage(job_id, body())
    before = await counts(registry_settings)
    await registry_rows(
        registry_settings, "UPDATE import_job SET state = 'failed' WHERE id = $1", job_id
    )
    with pytest.raises(RuntimeError, match="taken for abandoned"):
        await importer.complete(job_id, caller, {})
    assert await counts(registry_settings) == before
