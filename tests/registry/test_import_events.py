"""An import publishes one registry.household.registered per new household, and only those."""

from __future__ import annotations

import json
from uuid import UUID

from services.registry.settings import RegistrySettings
from shared.events import Event
from shared.events.registry import HouseholdRegistered
from tests.conftest import ClientFactory, eventually, registry_rows
from tests.registry.imports_support import csv_bytes, import_file, row


async def _registered(settings: RegistrySettings) -> list[dict[str, object]]:
    rows = await registry_rows(
        settings,
        "SELECT subject, payload, headers, sent_at FROM outbox "
        "WHERE payload->>'type' = 'registry.household.registered' ORDER BY seq",
    )
    return [dict(r) for r in rows]


async def test_one_event_per_new_household_in_the_shared_schema(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    rows = [
        row(house_code="24010100001", failed_indicators="2560-20|2560-04|2560-20"),
        row(house_code="24010100001", area_code="", failed_indicators=""),
        row(household_key="A", area_code="240102", survey_year="", failed_indicators=""),
        row(house_code="24010100002", first_name=""),  # rejected: no household, no event
    ]
    summary = await import_file(officer, csv_bytes(rows))
    assert summary["households_imported"] == 2

    events = await _registered(registry_settings)
    assert len(events) == 2
    households = {
        r["id"]: r
        for r in await registry_rows(
            registry_settings, "SELECT id, house_code, area_code FROM household"
        )
    }
    by_house_code = {}
    for stored in events:
        payload = stored["payload"]
        payload = json.loads(payload) if isinstance(payload, str) else payload
        event = Event.model_validate(payload)
        data = HouseholdRegistered.model_validate(event.data)
        assert set(event.data) == set(HouseholdRegistered.model_fields)
        assert event.type == HouseholdRegistered.type and event.schema_version == 1
        assert event.source == "pinpoint/registry"
        assert stored["subject"] == registry_settings.events_namespace + HouseholdRegistered.type
        assert event.subject == str(data.household_id)
        assert data.household_id in households
        assert event.area_code == data.area_code == households[data.household_id]["area_code"]
        assert data.status == "target" and data.mentor_team_id is None
        by_house_code[data.house_code] = data
    coded, keyed = by_house_code["24010100001"], by_house_code[None]
    assert coded.failed_indicators == ["2560-04", "2560-20"]
    assert coded.dimensions == ["health", "income"]
    assert coded.member_count == 2 and coded.survey_year == 2566
    assert keyed.failed_indicators == [] and keyed.dimensions == []
    assert keyed.member_count == 1 and keyed.survey_year is None
    assert all(UUID(json.loads(str(e["payload"]))["id"]).version == 7 for e in events)

    # The relay publishes them like any other event.
    async def all_sent() -> bool:
        return all(e["sent_at"] is not None for e in await _registered(registry_settings))

    await eventually(all_sent, what="the import's events are published")

    # A re-run registers nothing, so it publishes nothing.
    await import_file(officer, csv_bytes(rows))
    assert len(await _registered(registry_settings)) == 2
