"""Helpers the logbook tests share: a team and a household the logbook knows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import nats
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from services.logbook.settings import LogbookSettings
from shared.events import stream_name
from tests.conftest import db_rows, eventually

HOUSEHOLD = {"area_code": "240101", "address": "5 หมู่ 2", "failed_indicators": ["2560-20"]}
VISIT = {
    "visited_at": "2026-11-01T09:30:00+07:00",
    "analysis": {
        "attitude": "อยากมีรายได้เพิ่ม",
        "skills": "ทำขนมได้",
        "resources": "มีที่ดิน 2 ไร่",
        "way_out": "ฝึกอาชีพทำขนมขาย",
    },
    "capitals": {"human": 3, "physical": 2, "economic": 1, "natural": 3, "social": 4},
    "problems": [{"dimension": "income", "indicator": "2560-20", "note": "ไม่มีงานประจำ"}],
}


async def organization(
    admin: httpx.AsyncClient, kind: str = "mentor_team", area: str = "240101", **extra: Any
) -> str:
    response = await admin.post(
        "/v1/organizations",
        json={"kind": kind, "name": f"{kind} {area}", "area_code": area, **extra},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def household(admin: httpx.AsyncClient, team: str | None = None, **fields: Any) -> str:
    response = await admin.post("/v1/households", json={**HOUSEHOLD, **fields})
    assert response.status_code == 201, response.text
    household_id = str(response.json()["id"])
    if team is not None:
        assigned = await admin.put(
            f"/v1/households/{household_id}/mentor-team", json={"team_id": team}
        )
        assert assigned.status_code == 200, assigned.text
    return household_id


async def known(settings: LogbookSettings, household_id: str, **expected: Any) -> bool:
    rows = await db_rows(settings, "SELECT * FROM household_ref WHERE id = $1", UUID(household_id))
    return bool(rows) and all(str(rows[0][k]) == str(v) for k, v in expected.items())


async def wait_known(settings: LogbookSettings, household_id: str, **expected: Any) -> None:
    await eventually(lambda: known(settings, household_id, **expected))


async def count(settings: LogbookSettings, table: str) -> int:
    (row,) = await db_rows(settings, f"SELECT count(*) FROM {table}")
    return int(row[0])


def intervention(household_id: str, **fields: Any) -> dict[str, Any]:
    """A valid intervention body for the household (income training, 1,200.50 THB)."""
    return {
        "household_id": household_id,
        "dimension": "income",
        "menu_code": "INC-02",
        "amount_thb": "1200.50",
        **fields,
    }


async def set_status(
    admin: httpx.AsyncClient, household_id: str, status: str, reason: str = "ตรวจสอบแล้ว"
) -> None:
    """Move a household along its life cycle in the registry (the owner of its status)."""
    response = await admin.post(
        f"/v1/households/{household_id}/status", json={"status": status, "reason": reason}
    )
    assert response.status_code == 201, response.text


async def stream_messages(settings: LogbookSettings, stream: str = "LOGBOOK") -> list[RawStreamMsg]:
    """Every message the test's namespaced stream holds, oldest first."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        name = stream_name(stream, settings.events_namespace)
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            return []
        if not info.state.messages:
            return []
        first, last = info.state.first_seq, info.state.last_seq
        return [await js.get_msg(name, seq) for seq in range(first, last + 1)]
    finally:
        await nc.close()
