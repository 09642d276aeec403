"""Thai with its marks, invisible and direction characters: kept exactly, or a 4xx naming the field.

Thai stacks vowel and tone marks on a consonant (ผู้ใหญ่บ้าน: sara uu under ผ, mai tho above it);
names typed on phones carry zero-width characters; a right-to-left override can hide in text
pasted from elsewhere. None of it may be changed on the way in or out, and what PostgreSQL
cannot hold (U+0000, a lone UTF-16 surrogate) is refused as a field error, not a 500.
"""

from __future__ import annotations

import json
from typing import Any

from services.logbook.settings import LogbookSettings
from shared.auth import Role
from tests.gateway.conftest import Gateway
from tests.hostile.support import Ledger, assert_problem_4xx, error_fields
from tests.hostile.writes import WRITES, build_world, get, put
from tests.registry.support import citizen_id, household, person

HEADMAN = "ผู้ใหญ่บ้าน"  # sara uu and mai tho stacked on ผ, mai tho on บ
STACKED = "ก้้้้ก็็็็"  # marks stacked far past any real word
ZERO_WIDTH = "สม\u200bชาย\u200cใจ\u200dดี\ufeffนะ"
RTL = "บ้าน\u202e21 ที่ขเลน\u202c หมู่ 4"
# The same letter composed and decomposed: two texts, each kept as it came.
DECOMPOSED = "Cafe\u0301 กำ กํา"
ASTRAL = "𠀀 😀 🇹🇭"
LINES = "บรรทัดแรก\nบรรทัดสอง\r\n\tย่อหน้า\u2028จบ"
EVERYTHING = " ".join((HEADMAN, STACKED, ZERO_WIDTH, RTL, DECOMPOSED, ASTRAL, LINES))
TEXTS = (HEADMAN, STACKED, ZERO_WIDTH, RTL, DECOMPOSED, ASTRAL, LINES, "๑๒๓ ฯลฯ ๆ ฿")


def _raw(body: dict[str, Any]) -> bytes:
    """JSON as a client in another language might write it: a lone surrogate as `\\ud800`."""
    return json.dumps(body, ensure_ascii=True).encode()


async def test_every_free_text_field_keeps_thai_marks_and_invisible_characters(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    for w, write in enumerate(WRITES):
        for n, (field, limit) in enumerate(write.free_text.items()):
            value = f"w{w}f{n} {EVERYTHING}"[:limit].strip()  # its own text, to find it stored
            call = await write.prepare(world)
            if write.writes_first:
                ledger.changed()
            call.body = put(call.body, field, value)
            response = await ledger.send(world.admin, call, (write.name, field))
            assert response.status_code < 300, (write.name, field, response.text)
            try:
                assert get(response.json(), field) == value, (write.name, field)
            except (KeyError, IndexError, TypeError):
                pass  # not echoed: the database is asked
            assert await ledger.holds(value), ("not stored as sent", write.name, field)

            # What PostgreSQL cannot hold is a field error, and nothing is written.
            for bad in ("ข้อ\u0000ความ", "ข้อ\ud800ความ", "\udc00"):
                call = await write.prepare(world)
                if write.writes_first:
                    ledger.changed()
                call.content = _raw(put(call.body, field, bad))
                call.body = None
                call.headers["content-type"] = "application/json"
                response = await ledger.send(world.admin, call, (write.name, field, bad))
                problem = assert_problem_4xx(response, (write.name, field, bad))
                assert field in error_fields(problem), (write.name, field, bad, problem)


async def test_thai_names_round_trip_through_every_read_and_are_found(
    gateway: Gateway, logbook_settings: LogbookSettings
) -> None:
    admin = gateway.as_(Role.national_admin, "TH")
    registered = {}
    for text in TEXTS:
        name = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")[:200]
        members = [person(name, HEADMAN, title="นาย", relation=text[:50], citizen_id=citizen_id())]
        response = await admin.post("/v1/households", json=household(address=text, members=members))
        assert response.status_code == 201, response.text
        registered[response.json()["id"]] = (text, name)

    for household_id, (text, name) in registered.items():
        detail = (await admin.get(f"/v1/households/{household_id}")).json()
        assert detail["address"] == text
        (member,) = detail["members"]
        assert (member["first_name"], member["last_name"]) == (name, HEADMAN)
        assert member["relation"] == text[:50]
        person_read = (await admin.get(f"/v1/persons/{member['id']}")).json()
        assert person_read["first_name"] == name and person_read["relation"] == text[:50]
        listed = (await admin.get(f"/v1/households/{household_id}/members")).json()
        assert [m["first_name"] for m in listed] == [name]

    # Search by a Thai name with its marks, and by one with zero-width characters in it.
    found = (await admin.get("/v1/households", params={"q": HEADMAN, "limit": 50})).json()
    assert set(registered) <= {h["id"] for h in found["items"]}
    zero_width_name = ZERO_WIDTH
    zero_width_home = next(h for h, (t, _) in registered.items() if t == ZERO_WIDTH)
    found = (await admin.get("/v1/households", params={"q": zero_width_name})).json()
    assert zero_width_home in {h["id"] for h in found["items"]}
    found = (await admin.get("/v1/households", params={"q": "บ้าน\u202e21"})).json()
    assert next(h for h, (t, _) in registered.items() if t == RTL) in {
        h["id"] for h in found["items"]
    }


async def test_logbook_text_round_trips_through_visits_timeline_and_worklist(
    gateway: Gateway, logbook_settings: LogbookSettings
) -> None:
    world = await build_world(gateway, logbook_settings)
    mentor = gateway.as_(Role.mentor, "240101", world.team)
    analysis = {"attitude": HEADMAN, "skills": STACKED, "resources": ZERO_WIDTH, "way_out": RTL}
    visit = await mentor.post(
        f"/v1/households/{world.household}/visits",
        json={
            "visited_at": "2026-11-01T09:30:00+07:00",
            "analysis": analysis,
            "problems": [{"dimension": "income", "note": ASTRAL}],
            "note": LINES,
        },
    )
    assert visit.status_code == 201, visit.text
    given = await mentor.post(
        "/v1/interventions",
        json={
            "household_id": world.household,
            "dimension": "income",
            "menu_code": "INC-02",
            "description": DECOMPOSED,
        },
    )
    assert given.status_code == 201, given.text

    (listed,) = (await mentor.get(f"/v1/households/{world.household}/visits")).json()
    assert listed["analysis"] == analysis
    assert listed["note"] == LINES and listed["problems"][0]["note"] == ASTRAL
    read = (await mentor.get(f"/v1/interventions/{given.json()['id']}")).json()
    assert read["description"] == DECOMPOSED
    timeline = (await mentor.get(f"/v1/households/{world.household}/logbook")).json()
    seen = {entry["kind"]: entry["detail"] for entry in timeline}
    assert seen["visit"]["analysis"] == analysis
    assert seen["visit"]["note"] == LINES and seen["visit"]["problems"][0]["note"] == ASTRAL
    assert seen["intervention"]["description"] == DECOMPOSED
    (item,) = (await mentor.get(f"/v1/teams/{world.team}/worklist")).json()
    assert item["open_interventions"][0]["description"] == DECOMPOSED
