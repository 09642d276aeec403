"""The demo province: Chachoengsao with its centres, teams and 6,461 target households."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.demo import HOUSEHOLDS, load_demo
from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, registry_rows


async def test_demo_loads_chachoengsao_once_with_events(
    registry_app: FastAPI, registry_settings: RegistrySettings, as_caller: ClientFactory
) -> None:
    app = registry_app
    loaded = await load_demo(
        app.state.sessionmaker, app.state.vault, namespace=registry_settings.events_namespace
    )
    assert loaded == HOUSEHOLDS == 6461
    assert await load_demo(app.state.sessionmaker, app.state.vault) == 0

    kinds = dict(
        await registry_rows(
            registry_settings, "SELECT kind, count(*) FROM organization GROUP BY kind"
        )
    )
    assert kinds["operation_center"] == 1 + 11
    assert kinds["subdistrict_team"] == 93
    assert kinds["mentor_team"] == 2 * 93
    (row,) = await registry_rows(
        registry_settings,
        """
        SELECT count(*) AS households,
               count(*) FILTER (WHERE area_code NOT LIKE '24%') AS outside,
               count(*) FILTER (WHERE cardinality(failed_indicators) = 0) AS failing_nothing,
               count(*) FILTER (WHERE mentor_team_id IS NULL) AS unassigned
        FROM household""",
    )
    assert dict(row) == {"households": 6461, "outside": 0, "failing_nothing": 0, "unassigned": 0}
    (events,) = await registry_rows(
        registry_settings,
        """
        SELECT count(*) FILTER (WHERE payload->>'type' = 'registry.household.registered')
        FROM outbox""",
    )
    assert events[0] == 6461

    district = as_caller("district_officer", "2401")
    page = (await district.get("/v1/households", params={"limit": 500})).json()
    assert page["items"] and all(h["area_code"].startswith("2401") for h in page["items"])
    first = page["items"][0]
    detail = (await district.get(f"/v1/households/{first['id']}")).json()
    assert detail["members"] and detail["members"][0]["last_name"]
