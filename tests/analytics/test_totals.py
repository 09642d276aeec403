"""Progress equals what the registry's and the logbook's own records say, area by area."""

from __future__ import annotations

import nats
from fastapi import FastAPI

from services.analytics.events import LOGBOOK_DURABLE, REGISTRY_DURABLE
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from shared.events import stream_name
from tests.analytics.support import expected_totals, progress_matches, write_history
from tests.conftest import ClientFactory, eventually
from tests.faults.support import Services, quiet


async def test_progress_equals_the_totals_of_the_services_own_records(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    logbook_settings: LogbookSettings,
    analytics_app: FastAPI,
) -> None:
    households, interventions = await write_history(as_caller, logbook_as, logbook_settings)
    analyst = as_caller("analyst", "TH", app=analytics_app)
    assert expected_totals(households, interventions, "TH") == {
        "target_households": 5,
        "reached_households": 3,
        "graduated_households": 1,
        "interventions": {"planned": 1, "in_progress": 1, "completed": 2, "cancelled": 1},
        "amount_thb": "8700.00",
        "income_target": 3,
    }

    await progress_matches(analyst, households, interventions)
    children = (await analyst.get("/v1/progress/24/children")).json()
    assert len(children) == 11
    assert children[0]["area_code"] == "2401"  # the only district with a graduate
    csv_text = (await analyst.get("/v1/progress/24/children", params={"format": "csv"})).text
    assert csv_text.splitlines()[0].startswith("area_code,name_th")
    assert len(csv_text.splitlines()) == 12


async def test_every_event_delivered_twice_changes_no_total(
    as_caller: ClientFactory,
    logbook_as: ClientFactory,
    registry_settings: RegistrySettings,
    logbook_settings: LogbookSettings,
    analytics_settings: AnalyticsSettings,
    analytics_app: FastAPI,
) -> None:
    households, interventions = await write_history(as_caller, logbook_as, logbook_settings)
    analyst = as_caller("analyst", "TH", app=analytics_app)
    await progress_matches(analyst, households, interventions)
    # Totals equal to the records is not enough: an event that moves no total (a household
    # already reached moving on) may still come and move `as_of`.
    await quiet(
        Services(registry_settings, logbook_settings, analytics_settings, logbook_settings.nats_url)
    )
    before = {a: (await analyst.get(f"/v1/progress/{a}")).json() for a in ("TH", "2401")}

    namespace = logbook_settings.events_namespace
    nc = await nats.connect(logbook_settings.nats_url)
    try:
        js = nc.jetstream()
        for stream in ("REGISTRY", "LOGBOOK"):
            name = stream_name(stream, namespace)
            last = (await js.stream_info(name)).state.last_seq
            for seq in range(1, last + 1):
                message = await js.get_msg(name, seq)
                # A new message id gets past the stream's duplicate window: only the
                # consumers' own idempotency stands between the copy and the totals.
                await js.publish(
                    message.subject, message.data, headers={"Nats-Msg-Id": f"again-{stream}-{seq}"}
                )

        async def caught_up() -> bool:
            for stream, durable in (("REGISTRY", REGISTRY_DURABLE), ("LOGBOOK", LOGBOOK_DURABLE)):
                name = stream_name(stream, namespace)
                info = await js.consumer_info(name, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await eventually(caught_up, what="analytics handed every copy")
    finally:
        await nc.close()
    after = {a: (await analyst.get(f"/v1/progress/{a}")).json() for a in ("TH", "2401")}
    assert after == before
