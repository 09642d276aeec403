"""Who may import, inside which area, and a service that keeps answering while it imports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, eventually, registry_rows
from tests.registry.imports_support import (
    CSV,
    csv_bytes,
    csv_text,
    finished,
    import_file,
    rejected,
    row,
)
from tests.registry.support import assert_problem, counts


async def test_only_officers_may_import(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    body = csv_bytes([row(house_code="24010100001")])
    for role in ("mentor", "analyst"):
        response = await as_caller(role, "24").post(
            "/v1/imports/households", content=body, headers=CSV
        )
        assert_problem(response, 403)
    assert (await counts(registry_settings))["household"] == 0
    assert await registry_rows(registry_settings, "SELECT id FROM import_job") == []


async def test_rows_outside_the_callers_area_are_rejected(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    district = as_caller("district_officer", "2401")
    rows = [
        row(house_code="24010100001", area_code="240101"),
        row(house_code="24020100001", area_code="240201"),  # another district of 24
        row(house_code="10010100001", area_code="100101"),  # Bangkok
    ]
    summary = await import_file(district, csv_bytes(rows))
    assert rejected(summary) == {
        3: {"area_code": "area 240201 is outside your scope"},
        4: {"area_code": "area 100101 is outside your scope"},
    }
    assert summary["households_imported"] == 1
    stored = await registry_rows(registry_settings, "SELECT area_code FROM household")
    assert [r["area_code"] for r in stored] == ["240101"]


async def test_an_import_is_seen_only_inside_its_area(as_caller: ClientFactory) -> None:
    district = as_caller("district_officer", "2401")
    summary = await import_file(district, csv_bytes([row()]))
    path = f"/v1/imports/{summary['id']}"
    assert (await as_caller("province_officer", "24").get(path)).status_code == 200
    assert (await as_caller("national_admin", "TH").get(path)).status_code == 200
    assert_problem(await as_caller("district_officer", "2402").get(path), 404)
    assert_problem(await as_caller("mentor", "2401").get(path), 404)


async def test_the_service_answers_other_requests_while_an_import_streams(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    other = as_caller("district_officer", "2401")
    release = asyncio.Event()
    rows = [row(house_code=f"240101{n:05d}") for n in range(300)]
    text = csv_text(rows).encode()

    async def slow_upload() -> AsyncIterator[bytes]:
        yield text[: len(text) // 2]
        await release.wait()  # the rest of the file is still on its way
        yield text[len(text) // 2 :]

    upload = asyncio.create_task(
        officer.post("/v1/imports/households", content=slow_upload(), headers=CSV)
    )

    async def running() -> bool:
        states = await registry_rows(registry_settings, "SELECT state FROM import_job")
        return [r["state"] for r in states] == ["running"]

    await eventually(running, what="the import is running")
    for _ in range(3):
        answer = await asyncio.wait_for(other.get("/v1/areas/2401"), timeout=5)
        assert answer.status_code == 200
        listed = await asyncio.wait_for(other.get("/v1/households"), timeout=5)
        assert listed.status_code == 200
    assert not upload.done()
    release.set()
    response = await upload
    assert response.status_code == 202, response.text
    done = await finished(officer, response.json()["id"])
    assert done["state"] == "done" and done["rows_imported"] == 300
