"""Fuzzing the target-list import: files from Hypothesis, the parser alone and the whole service.

The files are mostly the format with something wrong: broken quoting, fields of any text (Thai
with its marks, NUL, SQL, 70,000 characters), columns missing, added or repeated, a BOM, line
ends mixed, another encoding, stray bytes. The parser either reads a file or refuses it with
a line and a reason, and reads it the same however its bytes arrive. The service answers 202
or a 4xx problem, never a 5xx; every job ends `done`, each rejected row explained, or `failed`
with its error; and what landed is exactly what the job says: households, persons and events.

As in tests/gateway/test_schemathesis.py, the services run in the test's event loop, so the
Hypothesis tests run in a worker thread and hand each import back to the loop.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st

from services.registry.imports.csvformat import (
    COLUMNS,
    STAGE_COLUMNS,
    CsvFormatError,
    CsvParser,
)
from services.registry.settings import RegistrySettings
from shared.pii import CitizenIdVault
from shared.thai import citizen_id_check_digit
from tests.conftest import ClientFactory, registry_rows
from tests.hostile.support import assert_problem_4xx
from tests.registry.imports_support import CSV, csv_text, finished
from tests.registry.support import citizen_id

T = TypeVar("T")

PARSER_EXAMPLES = 300
SERVICE_EXAMPLES = 60
THAI = (
    "".join(chr(c) for c in range(0x0E01, 0x0E5C) if chr(c).isprintable())
    + "\u200b\u200c\u200d\ufeff\u202e"
)
INJECTIONS = ("'; DROP TABLE household; --", "\\.\n", "\\N", "\t", "\\", "' OR 1=1 --", "%s")


def settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same files on every run: CI is reproducible
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# Values: what a column should hold, and what it should not.


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    twelve = str(draw(st.integers(10**11, 10**12 - 1)))
    return twelve + str(citizen_id_check_digit(twelve))


# Stand-ins that each file gets fresh values for (see `fresh`), so files do not collide.
HOUSE = "@H@"
CITIZEN = "@CID@"
_serials = itertools.count(1)


def fresh(data: bytes) -> bytes:
    """The file with a new 5-digit house number for each household and a new citizen ID each."""
    serial = next(_serials)
    data = re.sub(rb"@H(\d)@", lambda m: b"%05d" % ((serial * 4 + int(m[1])) % 100_000), data)
    return re.sub(rb"@CID@", lambda m: citizen_id().encode(), data)


@st.composite
def households(draw: st.DrawFn) -> dict[str, str]:
    """A household's fields, valid: a house code (or a key where it is not known) and more."""
    area = draw(st.sampled_from(["240101", "240102", "240103", "240104"]))
    coded = draw(st.integers(0, 3)) > 0
    where = draw(st.sampled_from([("", ""), ("13.69", "101.07")]))
    return {
        "house_code": f"{area[:6]}{HOUSE}" if coded else "",
        "household_key": "" if coded else draw(st.sampled_from(["A", "B", "ครัว-1"])),
        "area_code": area,
        "address": draw(st.text(THAI + " 0123456789/", max_size=40)),
        "survey_year": draw(st.sampled_from(["2566", "2565", ""])),
        "failed_indicators": draw(st.sampled_from(["2560-04", "2560-04|2560-20", ""])),
        "lat": where[0],
        "lon": where[1],
    }


PERSON = {
    "citizen_id": st.sampled_from([CITIZEN, CITIZEN, CITIZEN, ""]),
    "title": st.sampled_from(["นาย", "นาง", "นางสาว", "ด.ช.", ""]),
    "first_name": st.text(THAI, min_size=1, max_size=20).filter(str.strip),
    "last_name": st.text(THAI, min_size=1, max_size=20).filter(str.strip),
    "sex": st.sampled_from(["male", "female", "ชาย", "หญิง", "M"]),
    "birth_date": st.sampled_from(["1970-05-01", "2015-02-28", "1940-12-31", ""]),
    "relation": st.sampled_from(["head", "spouse", "child", "หัวหน้าครอบครัว", ""]),
    "disability": st.sampled_from(["false", "true", "ใช่", ""]),
    "welfare_card": st.sampled_from(["true", "false", "มี", ""]),
}
# Values a column should not hold, beside the hostile text any column may get.
INVALID = {
    "house_code": ["2401", "x", "240101000010"],
    "household_key": [""],
    "area_code": ["240201", "100101", "", "99", "2401"],
    "survey_year": ["1999", "๒๕๖๖", "-1", "99999999999999999999"],
    "failed_indicators": ["2560-99", "4", "2560-04||", "|"],
    "lat": ["91", "x", "1e400", "NaN"],
    "lon": ["-200", "inf"],
    "citizen_id": ["1234567890123", "1-1017-00203-45-1", "0" * 13],
    "sex": ["other", ""],
    "birth_date": ["2015-02-30", "31/12/2500", "0000-01-01", "9999-99-99", "2600-01-01"],
    "disability": ["maybe"],
}


# Text a file could hold in a field (decoded, so no lone surrogate; NUL comes with the bytes).
HOSTILE = st.one_of(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30),
    st.text(THAI, max_size=60),
    st.sampled_from(INJECTIONS),
    st.builds(lambda n, c: c * n, st.integers(500, 70_000), st.sampled_from(["ก", "x", '"', ","])),
)
# What each file gets wrong: nothing, some values, its structure, or its bytes.
MODES = (
    "clean",
    "clean",
    "values",
    "values",
    "values",
    "values",
    "structure",
    "structure",
    "bytes",
)


def render(field: str, quoted: bool) -> str:
    """A field as a CSV writer would put it (quoted), or as a careless one would (raw)."""
    if quoted:
        return '"' + field.replace('"', '""') + '"'
    return field


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A file near the format: its header, rows of good and hostile fields, its encoding."""
    mode = draw(st.sampled_from(MODES))
    structure = mode == "structure"
    columns = list(COLUMNS)
    if structure and draw(st.integers(0, 3)) == 0:
        drop = draw(st.sets(st.sampled_from(columns), max_size=2))
        columns = [c for c in columns if c not in drop]
    if structure and draw(st.integers(0, 3)) == 0:
        extra = draw(st.sampled_from(["extra", "ชื่อ", "first_name", "", "lat"]))
        columns.insert(draw(st.integers(0, len(columns))), extra)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    header = [draw(st.sampled_from([c, c.upper(), f" {c} "])) for c in columns]
    crs = structure and draw(st.integers(0, 3)) == 0
    ends = st.sampled_from(["\r\n", "\n"] + (["\r"] if crs else []))
    lines = [",".join(header) + draw(ends)]
    homes = draw(st.lists(households(), min_size=1, max_size=3))
    for n, home in enumerate(homes):  # each household its own house code
        home["house_code"] = home["house_code"].replace(HOUSE, f"@H{n}@")
    for _ in range(draw(st.integers(0 if structure else 1, 8))):
        home = draw(st.sampled_from(homes))
        fields = []
        for name in header:
            column = name.strip().lower()
            value = home.get(column) if column in home else draw(PERSON.get(column, HOSTILE))
            if mode == "values" and draw(st.integers(0, 30)) == 0:
                value = draw(st.one_of(st.sampled_from(INVALID.get(column, [""])), HOSTILE))
            fields.append(value)
        if structure:
            width = draw(st.sampled_from([0] * 8 + [1, -1]))
            fields = fields + [""] * width if width >= 0 else fields[:width]
        quoting = st.booleans() if structure and draw(st.booleans()) else st.just(True)
        lines.append(",".join(render(f, draw(quoting)) for f in fields) + draw(ends))
        if structure and draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["\r\n", '"', ",,,", "\n\n", '"a""b,c\n'])))
    text = "".join(lines)
    if draw(st.integers(0, 4)) == 0:
        text = text.rstrip("\r\n")  # no line end after the last row
    encoding = "utf-8"
    if draw(st.booleans()):
        encoding = "utf-8-sig"
    if mode == "bytes":
        encoding = draw(st.sampled_from(["utf-8", "cp874", "utf-16", "utf-16-le"]))
    data = text.encode(encoding, errors="replace")
    if mode == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


# The parser alone.


VAULT = CitizenIdVault(base64.b64encode(b"k" * 32).decode(), "index")
CIPHER = STAGE_COLUMNS.index("citizen_id_cipher")


def _steady(text: str) -> str:
    """COPY text with each ciphertext blanked (each encryption draws a new nonce)."""
    rows = [r.split("\t") for r in text.split("\n")]
    for r in rows:
        if len(r) > CIPHER:
            r[CIPHER] = "cipher" if r[CIPHER] != "\\N" else r[CIPHER]
    return "\n".join("\t".join(r) for r in rows)


def parse(data: bytes, cuts: list[int]) -> tuple[str, str]:
    """What the parser makes of a file fed in pieces: ("rows", COPY text) or ("error", line)."""
    parser = CsvParser(VAULT)
    out = []
    start = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            out.append(parser.feed(data[start:cut]))
            start = cut
        out.append(parser.finish())
    except CsvFormatError as exc:
        assert exc.message, exc
        assert exc.line >= 0
        return "error", exc.message
    return "rows", _steady(b"".join(out).decode())


def check_copy_text(text: str) -> None:
    """Each row of COPY text: one value per staging column, its line number among them."""
    numbers = []
    assert not text or text.endswith("\n"), text[-100:]
    for record in text.split("\n")[:-1]:
        assert "\r" not in record, record
        values = record.split("\t")
        assert len(values) == len(STAGE_COLUMNS), record
        numbers.append(int(values[STAGE_COLUMNS.index("line")]))
    assert numbers == sorted(set(numbers)), numbers


@settings(PARSER_EXAMPLES)
@hypothesis.given(data=csv_files(), cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_the_parser_reads_or_refuses_any_file_the_same_however_it_arrives(
    data: bytes, cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    whole = parse(data, [])
    if whole[0] == "rows":
        check_copy_text(whole[1])
    # Byte by byte at the cuts (a multi-byte letter, a CRLF or a BOM split in two): the same.
    pieces = parse(data, cuts)
    assert pieces[0] == whole[0], (whole, pieces)
    if whole[0] == "rows":
        assert pieces == whole


@settings(PARSER_EXAMPLES)
@hypothesis.given(data=st.binary(max_size=2000))
def test_the_parser_refuses_random_bytes_with_a_reason(data: bytes) -> None:
    kind, result = parse(data, [len(data) // 2])
    if kind == "rows":
        check_copy_text(result)


# The whole service.

COUNTED = (
    "SELECT (SELECT count(*) FROM household) AS households,"
    " (SELECT count(*) FROM person) AS persons, (SELECT count(*) FROM outbox) AS events"
)


async def _counts(settings_: RegistrySettings) -> dict[str, int]:
    (row,) = await registry_rows(settings_, COUNTED)
    return dict(row)


async def import_one(client: httpx.AsyncClient, settings_: RegistrySettings, data: bytes) -> None:
    """Import a file; prove the job ended as it says and what it says landed, and no more."""
    data = fresh(data)
    before = await _counts(settings_)
    response = await client.post("/v1/imports/households", content=data, headers=CSV)
    assert response.status_code < 500, response.text
    if response.status_code != 202:
        problem = assert_problem_4xx(response, data[:200])
        assert "nothing was imported" in problem["detail"], problem
        job = await finished(client, response.headers["Location"].rsplit("/", 1)[1])
        assert job["state"] == "failed" and job["error"], job
        assert await _counts(settings_) == before, ("a refused file changed data", job)
        return
    job = await finished(client, response.json()["id"], limit=500)
    after = await _counts(settings_)
    if job["state"] == "failed":
        assert after == before, ("a failed import changed data", job)
    # A file that could be read is checked row by row: bad values reject rows, not the job.
    assert job["state"] == "done", (job, data[:2000])
    assert job["rows_imported"] + job["rows_rejected"] == job["rows_read"], job
    lines = {r["line"] for r in job["rejected"]}
    assert len(lines) == job["rows_rejected"], job  # each rejected row explained
    for r in job["rejected"]:
        assert r["line"] >= 2 and r["reason"] and r["column"] in COLUMNS, r
    assert after == {
        "households": before["households"] + job["households_imported"],
        "persons": before["persons"] + job["rows_imported"],
        "events": before["events"] + job["households_imported"],
    }, ("half imported", job, data[:300])


def _run(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)


async def test_any_file_imports_whole_with_reasons_or_fails_with_nothing_imported(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    officer = as_caller("province_officer", "24")
    loop = asyncio.get_running_loop()

    @settings(SERVICE_EXAMPLES)
    @hypothesis.given(data=csv_files())
    def one_file(data: bytes) -> None:
        _run(loop, import_one(officer, registry_settings, data))

    await asyncio.to_thread(one_file)


async def test_a_row_of_empty_fields_is_rejected_not_a_failed_import(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    """The smallest file the fuzz found failing the move-in with a raw SQL error."""
    file = csv_text([]).encode() + b",".join([b'""'] * len(COLUMNS)) + b"\r\n"
    await import_one(as_caller("province_officer", "24"), registry_settings, file)
