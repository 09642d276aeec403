"""A scripted history in two halves, and the proof that analytics applied each event once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import nats
from fastapi import FastAPI

from services.analytics.events import (
    LOGBOOK_DURABLE,
    LOGBOOK_HANDLERS,
    REGISTRY_DURABLE,
    REGISTRY_HANDLERS,
)
from services.analytics.settings import AnalyticsSettings
from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from shared.events import Event, stream_name
from tests.analytics.support import records
from tests.conftest import ClientFactory, db_rows, eventually
from tests.logbook.support import VISIT, organization, wait_known

HOUSEHOLDS = {  # name: sub-district, failed indicators
    "a": ("240101", ["2560-20", "2560-08"]),  # income, living
    "b": ("240201", ["2560-09"]),  # living
    "c": ("240102", ["2560-22", "2560-27"]),  # income, public_access
    "d": ("240201", ["2560-16", "2560-04"]),  # education, health
}
AFTER_FIRST_HALF = {
    "target_households": 2,
    "reached_households": 2,
    "graduated_households": 0,
    "interventions": {"planned": 1, "in_progress": 1, "completed": 1, "cancelled": 0},
    "amount_thb": "1500.00",
    "income_target": 1,
}
AFTER_BOTH_HALVES = {
    "target_households": 4,
    "reached_households": 4,
    "graduated_households": 1,
    "interventions": {"planned": 2, "in_progress": 0, "completed": 3, "cancelled": 1},
    "amount_thb": "11700.00",
    "income_target": 2,
}
STREAMS = (
    ("REGISTRY", REGISTRY_DURABLE, REGISTRY_HANDLERS),
    ("LOGBOOK", LOGBOOK_DURABLE, LOGBOOK_HANDLERS),
)


@dataclass
class Script:
    """A history in two halves, written through the registry and the logbook by the clients
    the factories make (called as `factory(role, area, team_id)`)."""

    registry: ClientFactory
    logbook: ClientFactory
    registry_settings: RegistrySettings
    logbook_settings: LogbookSettings
    teams: dict[str, str] = field(default_factory=dict)
    households: dict[str, str] = field(default_factory=dict)

    def mentor(self, household: str) -> httpx.AsyncClient:
        area = HOUSEHOLDS[household][0]
        return self.logbook("mentor", area, UUID(self.teams[area]))

    async def register(self, *names: str, known: bool) -> None:
        """Register households and assign their sub-district's team; with `known`, wait until
        the logbook has heard of them from the events (else it asks the registry)."""
        admin = self.registry("national_admin", "TH")
        for name in names:
            area, failed = HOUSEHOLDS[name]
            if area not in self.teams:
                self.teams[area] = await organization(admin, area=area)
            created = await admin.post(
                "/v1/households",
                json={"area_code": area, "address": "1 หมู่ 1", "failed_indicators": failed},
            )
            assert created.status_code == 201, created.text
            self.households[name] = created.json()["id"]
            assigned = await admin.put(
                f"/v1/households/{self.households[name]}/mentor-team",
                json={"team_id": self.teams[area]},
            )
            assert assigned.status_code == 200, assigned.text
        for name in names if known else ():
            await wait_known(
                self.logbook_settings,
                self.households[name],
                mentor_team_id=self.teams[HOUSEHOLDS[name][0]],
            )

    async def visit(self, household: str) -> None:
        response = await self.mentor(household).post(
            f"/v1/households/{self.households[household]}/visits", json=VISIT
        )
        assert response.status_code == 201, response.text

    async def give(
        self, household: str, dimension: str, menu: str, amount: str, **extra: Any
    ) -> str:
        response = await self.mentor(household).post(
            "/v1/interventions",
            json={
                "household_id": self.households[household],
                "dimension": dimension,
                "menu_code": menu,
                "amount_thb": amount,
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def move(self, household: str, intervention: str, status: str) -> None:
        response = await self.mentor(household).post(
            f"/v1/interventions/{intervention}/status", json={"status": status}
        )
        assert response.status_code == 200, response.text

    async def household_status(self, household: str) -> str:
        admin = self.registry("national_admin", "TH")
        body = (await admin.get(f"/v1/households/{self.households[household]}")).json()
        return str(body["status"])

    async def first_half(self) -> str:
        """Two households in two districts, visited, with help completed, planned and under
        way; returns the intervention under way (the second half completes it)."""
        await self.register("a", "b", known=True)
        await self.visit("a")
        await self.visit("b")
        await self.give("a", "income", "INC-02", "1500.00", status="completed")
        await self.give("a", "living", "LIV-01", "20000.00")
        started = await self.give("b", "living", "LIV-03", "3000.00")
        await self.move("b", started, "in_progress")
        for name in ("a", "b"):  # the registry hears of the visits from the LOGBOOK stream

            async def visited(name: str = name) -> bool:
                return await self.household_status(name) == "in_progress"

            await eventually(visited, what=f"household {name} in progress in the registry")
        return started

    async def second_half(self, started: str, *, known: bool) -> None:
        """Two more households, a graduation, a correction, a cancellation, a completion."""
        await self.register("c", "d", known=known)
        graduated = await self.registry("district_officer", "2401").post(
            f"/v1/households/{self.households['a']}/status",
            json={"status": "graduated", "reason": "ติดตามแล้ว"},
        )
        assert graduated.status_code == 201, graduated.text
        wrong = await self.give("c", "income", "INC-01", "600.00", status="completed")
        fixed = await self.mentor("c").post(
            f"/v1/interventions/{wrong}/corrections",
            json={"amount_thb": "7200.00", "reason": "ทั้งปี"},
        )
        assert fixed.status_code == 201, fixed.text
        dropped = await self.give("d", "education", "EDU-01", "0")
        await self.move("d", dropped, "cancelled")
        await self.give("d", "health", "HLT-04", "0")
        await self.move("b", started, "completed")

    async def records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await records(
            self.registry("national_admin", "TH"), self.logbook("national_admin", "TH")
        )


async def stream_events(nats_url: str, namespace: str) -> dict[str, set[UUID]]:
    """The ids of the events in the streams that analytics applies, by its consumer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        found: dict[str, set[UUID]] = {}
        for stream, durable, handlers in STREAMS:
            name = stream_name(stream, namespace)
            state = (await js.stream_info(name)).state
            found[durable] = set()
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                event = Event.model_validate_json((await js.get_msg(name, seq)).data or b"")
                if event.type in handlers:
                    found[durable].add(event.id)
        return found
    finally:
        await nc.close()


async def applied_events(settings: AnalyticsSettings) -> dict[str, set[UUID]]:
    """The ids analytics recorded as applied, by consumer (one row per event and consumer)."""
    found: dict[str, set[UUID]] = {durable: set() for _, durable, _ in STREAMS}
    rows = await db_rows(settings, "SELECT consumer, event_id FROM processed_event")
    for row in rows:
        found[row["consumer"]].add(row["event_id"])
    assert sum(map(len, found.values())) == len(rows)
    return found


async def settled(script: Script, analytics: AnalyticsSettings, nats_url: str) -> None:
    """Wait until both outboxes are published and analytics has acked every event."""

    async def published() -> bool:
        for settings in (script.registry_settings, script.logbook_settings):
            (row,) = await db_rows(settings, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            if row["count"]:
                return False
        return True

    async def acked() -> bool:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            for stream, durable, _ in STREAMS:
                name = stream_name(stream, analytics.events_namespace)
                info = await js.consumer_info(name, durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True
        finally:
            await nc.close()

    await eventually(published, what="every outbox row published")
    await eventually(acked, what="analytics acked every event")


async def applied_once(script: Script, analytics: AnalyticsSettings, nats_url: str) -> int:
    """Assert analytics applied exactly the events the streams hold; returns how many."""
    await settled(script, analytics, nats_url)
    in_streams = await stream_events(nats_url, analytics.events_namespace)
    assert await applied_events(analytics) == in_streams
    assert await db_rows(analytics, "SELECT event_id FROM dead_letter") == []
    return sum(map(len, in_streams.values()))


def applied_by(app: FastAPI) -> int:
    """Events the app's own consumers applied for the first time while it ran."""
    return sum(consumer.applied for consumer in app.state.consumers)
