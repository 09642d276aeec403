"""SQL injection and oversized strings in every text field and text query parameter.

Through the gateway, as a national admin: each answer is a 2xx that kept the text exactly as
sent, or a 4xx problem that left every table of the registry and the logbook as it was.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import uuid4

import httpx

from services.logbook.settings import LogbookSettings
from shared.auth import Role
from shared.pagination import decode_cursor, encode_cursor
from tests.gateway.conftest import Gateway
from tests.hostile.support import Call, Ledger, error_fields
from tests.hostile.writes import WRITES, World, build_world, get, put
from tests.logbook.support import intervention
from tests.registry.imports_support import CSV, csv_text, finished, row
from tests.registry.support import household

# Quotes of both kinds, comment and statement ends, dollar quotes, backslashes, LIKE wildcards.
INJECTIONS = (
    "' OR '1'='1' --",
    "'); DROP TABLE household; --",
    '"; DELETE FROM person WHERE ""="',
    "$$; SELECT pg_sleep(5); $$ \\'",
    "%_' UNION SELECT citizen_id_cipher FROM person; TRUNCATE outbox;--",
)
FORM_INJECTIONS = INJECTIONS[:2]
OVERSIZED = "x" * 100_000
BEYOND_THE_BODY_LIMIT = "ข" * 400_000  # 1.2 MB of UTF-8


async def test_hostile_text_in_every_field_of_every_write(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    for w, write in enumerate(WRITES):
        for n, field in enumerate(write.fields):
            limit = write.free_text.get(field)
            # Three of the injections a field, in turn; each with the field's own tag in front,
            # to find it in the database.
            turn = [INJECTIONS[(w + n + i) % len(INJECTIONS)] for i in range(3)]
            tagged = tuple(f"w{w}f{n}{text}" for text in turn)
            values = (*tagged, "ก" * (limit + 1)) if limit else FORM_INJECTIONS
            values += (OVERSIZED, BEYOND_THE_BODY_LIMIT) if n == 0 else (OVERSIZED,)
            for value in values:
                what = (write.name, field, value[:40])
                call = await write.prepare(world)
                if write.writes_first:
                    ledger.changed()
                call.body = put(call.body, field, value)
                response = await ledger.send(world.admin, call, what)
                if limit is not None and len(value) <= limit:
                    # Free text up to its length: stored as sent, whatever it looks like.
                    assert response.status_code < 300, (what, response.text)
                    # Stored as sent (before a later change of the same record replaces it).
                    assert await ledger.holds(value), ("not stored as sent", what)
                    try:
                        echoed = get(response.json(), field)
                    except (KeyError, IndexError, TypeError):
                        continue  # not in the answer
                    assert echoed == value, what
                elif limit is not None:
                    assert response.status_code >= 400, ("past the limit, yet taken", what)
                elif response.status_code < 300:
                    # A field with a form (a code, an id, a date) took it: only if kept as is.
                    assert get(response.json(), field) == value, what


# Bodies no JSON parser should be made to choke on: nesting past the recursion limit, a number
# past the digits Python converts, bytes that are not UTF-8.
BROKEN_BODIES = {
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a nested field": b'{"name":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a 100,000-digit number": b'{"survey_year":' + b"9" * 100_000 + b"}",
    "Latin-1 text": b'{"name":"caf\xe9"}',
}


async def test_json_that_breaks_parsers_is_a_4xx_at_every_write(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    for write in WRITES:
        call = await write.prepare(world)
        if write.writes_first:
            ledger.changed()
        for name, body in BROKEN_BODIES.items():
            call.body, call.content = None, body
            call.headers["content-type"] = "application/json"
            answer = await ledger.send(world.admin, call, (write.name, name))
            assert answer.status_code >= 400, (write.name, name, answer.text)


QUERY_VALUES = (*INJECTIONS, "%%", "__", "ก\x00ข", "x" * 10_000, "ก" * 3000)
# Escapes a client may send that are no UTF-8 text: NUL, a lone surrogate, bytes, overlong.
RAW_ESCAPES = ("%00", "%ED%A0%80", "%FF%FE", "%C0%AF")


def _queries(world: World, job: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every read with text in its query (or a path segment that is text: `{}`)."""
    return [
        ("/v1/areas", ("level", "parent", "cursor")),
        ("/v1/areas/{}", ()),
        ("/v1/organizations", ("kind", "area_code", "cursor")),
        (f"/v1/organizations/{world.team}/members", ("cursor",)),
        ("/v1/households", ("area_code", "status", "dimension", "team_id", "q", "cursor")),
        (f"/v1/households/{world.household}/audit", ("cursor",)),
        (f"/v1/imports/{job}", ("cursor",)),
        ("/v1/menus", ("dimension",)),
        (
            "/v1/interventions",
            (
                "area_code",
                "household_id",
                "status",
                "dimension",
                "menu_code",
                "include_superseded",
                "cursor",
            ),
        ),
        (f"/v1/teams/{world.team}/worklist", ("limit",)),
        ("/v1/progress/{}", ()),
        ("/v1/progress/{}/children", ()),
        ("/v1/progress/24/children", ("format",)),
        ("/v1/progress/24/series", ("from", "to", "dimension")),
        ("/v1/progress/{}/chart.svg", ()),
    ]


async def test_hostile_text_in_every_query_parameter(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    header_only = csv_text([]).encode()
    started = await world.admin.post("/v1/imports/households", content=header_only, headers=CSV)
    assert started.status_code == 202, started.text
    job = started.json()["id"]
    await finished(world.admin, job)
    ledger.changed()
    for path, params in _queries(world, job):
        for value in QUERY_VALUES + RAW_ESCAPES:
            raw = value in RAW_ESCAPES
            text = value if raw else quote(value, safe="")
            if "{}" in path:
                calls = [("path", Call("GET", path.format(text)))]
            else:
                calls = [(p, Call("GET", f"{path}?{p}={text}")) for p in params]
            for param, call in calls:
                what = (path, param, value[:40])
                response = await ledger.send(world.admin, call, what)
                if response.status_code < 300 and "json" in response.headers["content-type"]:
                    # Nothing holds such text: a list that took it finds nothing.
                    assert response.json().get("items", []) == [], what

    # The reason for reading personal data is logged as written.
    for value in QUERY_VALUES:
        call = Call(
            "GET", f"/v1/households/{world.household}", headers={"X-Access-Reason": value.encode()}
        )
        response = await ledger.send(world.admin, call, ("X-Access-Reason", value[:40]))
        if "\x00" in value:
            assert error_fields(response.json()) == {"header.x-access-reason"}, response.text
        elif len(value) <= 500:
            assert response.status_code == 200, response.text
            assert await ledger.holds(value), ("access reason not logged as sent", value)

    # The file name of an import is kept as given.
    for value in QUERY_VALUES + RAW_ESCAPES:
        text = value if value in RAW_ESCAPES else quote(value, safe="")
        call = Call(
            "POST", f"/v1/imports/households?filename={text}", content=header_only, headers=CSV
        )
        response = await ledger.send(world.admin, call, ("filename", value[:40]))
        if "\x00" in value or value == "%00":
            assert error_fields(response.json()) == {"query.filename"}, response.text
        elif response.status_code < 300:
            if value not in RAW_ESCAPES:  # bytes that are no text arrive as U+FFFD
                assert response.json()["filename"] == value
            await finished(world.admin, response.json()["id"])


# What a crafted cursor may put in place of each value of a real one (cursors are JSON).
CURSOR_VALUES: tuple[Any, ...] = (
    *INJECTIONS[:2],
    "",
    None,
    True,
    -1,
    10**30,
    1.5,
    [],
    {"$gt": ""},
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-23:59",
    "ก" * 300,
)


async def _crafted_cursors(admin: httpx.AsyncClient, ledger: Ledger, path: str) -> None:
    """Each value of a real cursor of the list swapped for one a client crafted."""
    first = await admin.get(path, params={"limit": 1})
    assert first.status_code == 200, first.text
    real = decode_cursor(first.json()["next_cursor"])
    assert real, (path, first.json())
    crafted = [{**real, key: value} for key in real for value in CURSOR_VALUES]
    crafted += [{}, {"x": 1}, {**real, "extra": "' OR 1=1"}]
    for key in crafted:
        call = Call("GET", path, params={"cursor": encode_cursor(key), "limit": "1"})
        await ledger.send(admin, call, (path, key))


async def test_a_crafted_cursor_is_a_4xx_or_a_page(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    world = await build_world(gateway, logbook_settings)
    admin = world.admin
    for _ in range(2):
        assert (await admin.post("/v1/households", json=household())).status_code == 201
        member = {"name": "สมศรี", "subject": f"m-{uuid4()}"}
        added = await admin.post(f"/v1/organizations/{world.team}/members", json=member)
        assert added.status_code == 201, added.text
        given = await admin.post("/v1/interventions", json=intervention(world.household))
        assert given.status_code == 201, given.text
    ledger.changed()
    for path in (
        "/v1/areas",
        "/v1/organizations",
        f"/v1/organizations/{world.team}/members",
        "/v1/households",
        f"/v1/households/{world.household}/audit",
        "/v1/interventions",
    ):
        await _crafted_cursors(admin, ledger, path)


async def test_a_crafted_cursor_of_an_imports_rejected_rows_is_a_4xx_or_a_page(
    gateway: Gateway, logbook_settings: LogbookSettings, ledger: Ledger
) -> None:
    admin = gateway.as_(Role.province_officer, "24")
    bad_rows = csv_text([row(sex="other"), row(birth_date="31/12/2500")]).encode()
    started = await admin.post("/v1/imports/households", content=bad_rows, headers=CSV)
    assert started.status_code == 202, started.text
    job = await finished(admin, started.json()["id"])
    assert job["rows_rejected"] == 2, job
    ledger.changed()
    await _crafted_cursors(admin, ledger, f"/v1/imports/{job['id']}")
