"""A history import lands visits and interventions as the API writes them, with the same events,
and a re-run of the same file imports nothing twice."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from services.logbook.settings import LogbookSettings
from shared.events import Event
from shared.events.logbook import InterventionRecorded, VisitRecorded
from tests.conftest import ClientFactory, db_rows, eventually
from tests.logbook.history_support import csv_bytes, entry, import_file, rejected, visit
from tests.logbook.support import count, household, organization, wait_known


async def _events(settings: LogbookSettings) -> list[tuple[dict[str, Any], Event]]:
    rows = await db_rows(settings, "SELECT subject, payload, sent_at FROM outbox ORDER BY seq")
    return [(dict(r), Event.model_validate(json.loads(r["payload"]))) for r in rows]


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_valid_file_lands_with_its_counts_and_the_api_s_events(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    # The second household is registered first, in the next sub-district: the smaller id, the
    # later area.
    second = await household(admin, area_code="240102")
    first = await household(admin, team)
    await wait_known(logbook_settings, first, mentor_team_id=team)
    await wait_known(logbook_settings, second)
    officer = logbook_as("province_officer", "24")
    rows = [
        visit(first, "v-1", team_id=team, at="2024-01-10T10:00:00+07:00"),
        entry(first, "i-1"),
        entry(first, "i-2", status="in_progress", completed_at="", amount_thb=""),
        visit(first, "v-0", at="2023-12-01T09:00:00Z", capitals="", note=""),
        # An intervention before the household's first visit: the visit is still its first.
        entry(
            second,
            "i-1",
            at="2024-01-20T08:00:00+07:00",
            dimension="living",
            menu_code="LIV-03",
            status="",
            completed_at="",
        ),
        visit(second, "v-1", at="2024-02-01T08:00:00+07:00"),
    ]
    summary = await import_file(officer, csv_bytes(rows, bom=True), filename="history.csv")

    assert summary["state"] == "done", summary
    assert (summary["rows_read"], summary["rows_imported"], summary["rows_rejected"]) == (6, 6, 0)
    assert (summary["visits_imported"], summary["interventions_imported"]) == (3, 3)
    assert summary["rejected"] == [] and summary["filename"] == "history.csv"
    assert await count(logbook_settings, "visit") == 3
    assert await count(logbook_settings, "intervention") == 3
    assert await count(logbook_settings, "intervention_status_change") == 3

    # Read back through the API as any entry: amounts, statuses, times and the first status.
    listed = (await officer.get("/v1/interventions", params={"household_id": first})).json()
    by_status = {i["status"]: i for i in listed["items"]}
    done = by_status["completed"]
    assert done["amount_thb"] == "1200.50" and done["menu_code"] == "INC-02"
    assert _moment(done["completed_at"]) == _moment("2025-04-10T16:00:00+07:00")
    assert _moment(done["recorded_at"]) == _moment("2025-03-20T09:00:00+07:00")
    assert by_status["in_progress"]["amount_thb"] is None
    detail = (await officer.get(f"/v1/interventions/{done['id']}")).json()
    assert [(h["from_status"], h["to_status"]) for h in detail["history"]] == [(None, "completed")]
    planned = (await officer.get("/v1/interventions", params={"household_id": second})).json()
    assert [i["status"] for i in planned["items"]] == ["planned"]
    visits = (await officer.get(f"/v1/households/{first}/visits")).json()
    assert [(v["team_id"], v["capitals"]) for v in visits] == [
        (None, None),
        (team, {"human": 3, "physical": 4, "economic": 2, "natural": 5, "social": 3}),
    ]
    assert visits[1]["next_visit_due"] == "2024-04-09"  # 90 days after 10 January

    # One event per entry, each at its entry's time, written area by area and household by
    # household, each household's in the order its entries happened.
    events = await _events(logbook_settings)
    assert len(events) == 6
    written = [(e.area_code, UUID(e.data["household_id"]), e.time) for _, e in events]
    assert written == sorted(written)
    assert [h for _, h, _ in written] == [UUID(first)] * 4 + [UUID(second)] * 2
    assert UUID(second) < UUID(first)  # the area comes before the household
    first_events = [e for _, e in events if e.data["household_id"] == first]
    assert first_events[0].time == _moment("2023-12-01T09:00:00Z")
    assert [e.id for _, e in events] == sorted(e.id for _, e in events)  # ids in that order too
    for stored, event in events:
        assert stored["subject"] == logbook_settings.events_namespace + event.type
        assert event.source == "pinpoint/logbook" and event.schema_version == 1
        assert UUID(str(event.id)).version == 7
    visits_of = {
        (e.data["household_id"], e.data["visited_at"][:10]): e
        for _, e in events
        if e.type == VisitRecorded.type
    }
    assert visits_of[(first, "2023-12-01")].data["first_visit"] is True
    assert visits_of[(first, "2024-01-10")].data["first_visit"] is False
    assert visits_of[(second, "2024-02-01")].data["first_visit"] is True

    # The relay publishes them like any other event.
    async def all_sent() -> bool:
        return all(stored["sent_at"] is not None for stored, _ in await _events(logbook_settings))

    await eventually(all_sent, what="the import's events are published")


async def test_an_imported_entry_s_event_is_the_event_the_api_writes_for_it(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    team = await organization(admin)
    household_id = await household(admin, team)
    await wait_known(logbook_settings, household_id, mentor_team_id=team)
    officer = logbook_as("province_officer", "24")
    # First the API (its visit is the household's first, the imported one is not).
    at = "2025-03-05T10:30:00+07:00"
    api_visit = await officer.post(
        f"/v1/households/{household_id}/visits",
        json={
            "visited_at": at,
            "team_id": team,
            "capitals": {"human": 3, "physical": 4, "economic": 2, "natural": 5, "social": 3},
            "note": "เยี่ยมบ้าน, คุยเรื่องอาชีพ",
        },
    )
    api_entry = await officer.post(
        "/v1/interventions",
        json={
            "household_id": household_id,
            "dimension": "income",
            "menu_code": "INC-02",
            "amount_thb": "1200.5",
            "status": "completed",
            "completed_at": "2025-04-10T16:00:00+07:00",
            "description": "อบรมทำขนมไทย 5 วัน",
        },
    )
    assert api_visit.status_code == api_entry.status_code == 201
    summary = await import_file(
        officer,
        csv_bytes([visit(household_id, "v", team_id=team, at=at), entry(household_id, "i")]),
    )
    assert summary["rows_imported"] == 2, summary

    events = [e for _, e in await _events(logbook_settings)]
    api = {e.type: e for e in events[:2]}
    imported = {e.type: e for e in events[2:]}
    assert set(api) == set(imported) == {VisitRecorded.type, InterventionRecorded.type}
    for kind, model, id_field, own in (
        (VisitRecorded.type, VisitRecorded, "visit_id", {"visit_id", "first_visit"}),
        (
            InterventionRecorded.type,
            InterventionRecorded,
            "intervention_id",
            {"intervention_id", "recorded_at"},
        ),
    ):
        a, b = api[kind], imported[kind]
        assert set(a.data) == set(b.data) == set(model.model_fields)
        a_data, b_data = model.model_validate(a.data), model.model_validate(b.data)
        assert a_data.model_dump(exclude=own) == b_data.model_dump(exclude=own), kind
        assert (a.source, a.area_code, a.schema_version) == (b.source, b.area_code, 1)
        assert a.subject == str(a.data[id_field]) and b.subject == str(b.data[id_field])
    assert api[VisitRecorded.type].data["first_visit"] is True
    assert imported[VisitRecorded.type].data["first_visit"] is False
    entry_event = InterventionRecorded.model_validate(imported[InterventionRecorded.type].data)
    assert entry_event.recorded_at == _moment("2025-03-20T09:00:00+07:00")
    assert imported[InterventionRecorded.type].time == entry_event.recorded_at
    assert imported[VisitRecorded.type].time == _moment(at)


async def test_a_rerun_of_the_same_file_imports_nothing_twice(
    as_caller: ClientFactory, logbook_as: ClientFactory, logbook_settings: LogbookSettings
) -> None:
    admin = as_caller("national_admin", "TH")
    household_id = await household(admin)
    await wait_known(logbook_settings, household_id)
    officer = logbook_as("national_admin", "TH")
    body = csv_bytes([visit(household_id, "v-1"), entry(household_id, "i-1")])
    assert (await import_file(officer, body))["rows_imported"] == 2
    outbox = await count(logbook_settings, "outbox")

    again = await import_file(officer, body)
    assert (again["state"], again["rows_imported"], again["rows_rejected"]) == ("done", 0, 2)
    reasons = rejected(again)
    assert set(reasons) == {2, 3}
    assert all(set(r) == {"entry_key"} for r in reasons.values())
    assert reasons[2]["entry_key"].startswith("imported before (entry ")
    assert await count(logbook_settings, "visit") == 1
    assert await count(logbook_settings, "intervention") == 1
    assert await count(logbook_settings, "outbox") == outbox

    # A key is the household's own: the same key on another household is another entry.
    other = await household(admin)
    await wait_known(logbook_settings, other)
    third = await import_file(officer, csv_bytes([visit(other, "v-1"), visit(household_id, "v-2")]))
    assert (third["rows_imported"], third["rows_rejected"]) == (2, 0)
