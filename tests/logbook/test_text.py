"""Text the database cannot hold (U+0000) is a field error, in every logbook text field."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import pytest

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory
from tests.logbook.support import VISIT, count, household, intervention, organization, wait_known

NUL = "ข้อความ\u0000ต่อ"
ANALYSIS = cast(dict[str, str], VISIT["analysis"])

VISIT_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"analysis": {**ANALYSIS, "attitude": NUL}}, "analysis.attitude"),
    ({"analysis": {**ANALYSIS, "skills": NUL}}, "analysis.skills"),
    ({"analysis": {**ANALYSIS, "resources": NUL}}, "analysis.resources"),
    ({"analysis": {**ANALYSIS, "way_out": NUL}}, "analysis.way_out"),
    ({"note": NUL}, "note"),
    ({"problems": [{"dimension": "income", "note": NUL}]}, "problems.0.note"),
    ({"problems": [{"dimension": "income", "indicator": "2560-2\u0000"}]}, "problems.0.indicator"),
]


@pytest.mark.parametrize(("change", "field"), VISIT_FIELDS)
async def test_a_nul_in_a_visit_is_a_422(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    change: dict[str, Any],
    field: str,
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id)
    response = await logbook_as("district_officer", "2401").post(
        f"/v1/households/{household_id}/visits", json={**VISIT, **change}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await count(logbook_settings, "visit") == await count(logbook_settings, "outbox") == 0


async def test_a_nul_in_any_intervention_text_is_a_422(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    mentor = logbook_as("mentor", "240101", UUID(team))
    national = logbook_as("national_admin", "TH")

    created = await mentor.post(
        "/v1/interventions", json=intervention(household_id, description=NUL)
    )
    assert created.status_code == 422, created.text
    assert [e["field"] for e in created.json()["errors"]] == ["description"]

    entry = (await mentor.post("/v1/interventions", json=intervention(household_id))).json()
    written = {t: await count(logbook_settings, t) for t in ("intervention", "outbox")}
    refusals = [
        (f"/v1/interventions/{entry['id']}/status", {"status": "completed", "note": NUL}, "note"),
        (f"/v1/interventions/{entry['id']}/corrections", {"reason": NUL}, "reason"),
        (
            f"/v1/interventions/{entry['id']}/corrections",
            {"description": NUL, "reason": "แก้คำอธิบาย"},
            "description",
        ),
    ]
    for path, body, field in refusals:
        response = await mentor.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    for field in ("name_th", "name_en", "agency_hint"):
        item = {"code": "INC-90", "dimension": "income", "name_th": "ทดลอง", "name_en": "Trial"}
        response = await national.post("/v1/menus", json={**item, field: NUL})
        assert response.status_code == 422, (field, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert {t: await count(logbook_settings, t) for t in written} == written
    assert (await mentor.get(f"/v1/interventions/{entry['id']}")).json()["status"] == "planned"
    assert all(m["code"] != "INC-90" for m in (await national.get("/v1/menus")).json())
