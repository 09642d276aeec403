"""The logbook history CSV format and its streaming parser.

The format (`sample.csv` beside this file is a small example)
---------------------------------------------------------------
UTF-8, with or without a BOM; comma-separated, quoted as spreadsheets quote (`"` around a field
holding commas, quotes or line breaks). The first line names the columns, in any order; a column
left out reads as empty everywhere. One row per logbook entry:

- `kind` (required): `visit` or `intervention`.
- `household_id` (required): the household's UUID. It must be in the logbook's read model of
  households, inside the importer's area, with its logbook open (not moved, deceased or a
  duplicate); any other is rejected as "no household", as one that does not exist.
- `team_id` (optional): a mentor team's UUID. A visit's team must be the household's mentor
  team; the logbook keeps no team on an intervention, so there it is only checked as a UUID.
- `at` (required): ISO 8601 with an offset (`2024-03-05T10:30:00+07:00`, or `Z`): when the
  visit was made, or when the intervention was recorded; not in the future.
- `dimension` (interventions, required): health, living, education, income, public_access.
- `menu_code` (interventions, required): an item of the solution catalogue (`GET /v1/menus`)
  of that dimension.
- `amount_thb` (interventions, optional): THB, from 0, at most 2 decimals (`1500`, `600.50`).
- `status` (interventions): planned (when empty), in_progress, completed, cancelled.
- `completed_at` (interventions): as `at`; required if and only if the status is completed,
  and not before `at`.
- `description` (interventions, optional): at most 4,000 characters.
- `capitals` (visits, optional): the five capitals as five digits 1-5, in the order human,
  physical, economic, natural, social (`34253`).
- `note` (visits, optional): at most 4,000 characters.
- `entry_key` (required): the old system's own key of the entry (at most 200 characters),
  unique within its household across visits and interventions. An entry whose key its
  household has already is rejected as imported before: a re-run of a file imports nothing
  twice.

A field given for the other kind (a `menu_code` on a visit, `capitals` on an intervention) is an
error, not ignored. Each entry lands as `POST /v1/households/{id}/visits` or
`POST /v1/interventions` would write it (with no problems and an empty 4 ท analysis for a
visit), and publishes the same event, whose time is the entry's `at`.

The parser
----------
It turns CSV bytes, as they arrive, into rows of PostgreSQL `COPY … FROM STDIN` text for the
staging table. It checks only what makes the file unreadable (encoding, header, field counts,
quoting): those stop the import, whole. Everything about the values is checked in SQL after the
upload, each wrong value rejected with its line, column and reason.
"""

from __future__ import annotations

import codecs
import csv
import difflib
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

# The file's columns, in the order of the staging table (after `line`).
COLUMNS = (
    "kind",
    "household_id",
    "team_id",
    "at",
    "dimension",
    "menu_code",
    "amount_thb",
    "status",
    "completed_at",
    "description",
    "capitals",
    "note",
    "entry_key",
)
REQUIRED_COLUMNS = ("kind", "household_id", "at", "entry_key")
STAGE_COLUMNS = (*COLUMNS, "line")

# A quoted field may hold line breaks, but not a whole file: past this, a quote was left open.
MAX_RECORD_CHARS = 64 * 1024
MAX_RECORD_LINES = 100
_COPY_SPECIALS = ("\\", "\n", "\r")


class CsvFormatError(Exception):
    """The file cannot be read as the format: nothing of it may be imported."""

    def __init__(self, line: int, message: str, column: str | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.column = column
        self.message = message


def _escape(value: str) -> str:
    """A value as COPY's text format writes it."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


class CsvParser:
    """Feed it bytes as they arrive; it returns COPY text for the rows completed so far."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._started = False
        self._pending = ""  # the text after the last line break seen
        self._record: list[str] = []  # the lines of a record whose quote is still open
        self._record_start = 0
        self._record_quotes = 0
        self._line = 0  # physical lines taken so far
        self._pick: itemgetter[Any] | None = None
        self._width = 0
        self.rows = 0
        self.bytes = 0

    def feed(self, data: bytes) -> bytes:
        """Take the next piece of the file; return COPY text for the rows it completed."""
        self.bytes += len(data)
        if not self._started and data:
            self._started = True
            if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise CsvFormatError(
                    1, "the file is UTF-16; save it as UTF-8 (in Excel: CSV UTF-8)"
                )
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise self._not_utf8(data, exc) from None
        return self._take(text, final=False)

    def finish(self) -> bytes:
        """The end of the file: the last rows, or the reason the file is incomplete."""
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise self._not_utf8(b"", exc) from None
        out = self._take(text, final=True)
        if self._record:
            raise CsvFormatError(self._record_start, "a quoted field is never closed")
        if self._pick is None:
            raise CsvFormatError(0, "the file is empty: the first line names the columns")
        return out

    def _not_utf8(self, data: bytes, exc: UnicodeDecodeError) -> CsvFormatError:
        line = self._line + len(self._record) + self._pending.count("\n") + 1
        line += data[: exc.start].count(b"\n")
        byte = exc.object[exc.start : exc.start + 1].hex().upper()
        return CsvFormatError(
            line,
            f"the file is not UTF-8 (byte 0x{byte}); save it as UTF-8 (in Excel: CSV UTF-8)"
            " — a TIS-620 or Windows-874 file needs converting first",
        )

    def _take(self, text: str, *, final: bool) -> bytes:
        if not self._line and not self._record and not self._pending:
            text = text.removeprefix("\ufeff")
        if "\x00" in text:
            at = self._line + self._pending.count("\n") + text[: text.index("\x00")].count("\n")
            raise CsvFormatError(at + 1, "the file holds NUL bytes: it is not a text CSV file")
        body = self._pending + text
        lines = body.split("\n")
        self._pending = "" if final else lines.pop()
        if final and lines and lines[-1] == "":
            lines.pop()
        if not self._record and _plain(body):
            # No quotes, tabs or backslashes, and carriage returns only before line feeds:
            # every line is one record whose fields split at commas and need no escaping.
            first = self._line + 1
            self._line += len(lines)
            numbered = zip(range(first, self._line + 1), map(_split, lines), strict=True)
            return self._rows(numbered, escape=False)
        starts: list[int] = []
        records: list[str] = []
        for line in lines:
            self._line += 1
            if not self._record:
                if '"' not in line:
                    starts.append(self._line)
                    records.append(line)
                    continue
                self._record_start, self._record_quotes = self._line, 0
            self._record.append(line)
            self._record_quotes += line.count('"')
            if self._record_quotes % 2 == 0:
                starts.append(self._record_start)
                records.append("\n".join(self._record))
                self._record = []
            elif (
                len(self._record) > MAX_RECORD_LINES
                or sum(map(len, self._record)) > MAX_RECORD_CHARS
            ):
                raise CsvFormatError(self._record_start, "a quoted field is never closed")
        return self._rows(zip(starts, _read(starts, records), strict=True), escape=True)

    def _rows(self, records: Iterable[tuple[int, list[str]]], *, escape: bool) -> bytes:
        out: list[str] = []
        for line, fields in records:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if self._pick is None:
                self._header(fields, line)
                continue
            if len(fields) != self._width:
                raise CsvFormatError(
                    line, f"the row has {len(fields)} fields; the header has {self._width}"
                )
            fields.append("")  # the value of every column the file leaves out
            values = [v.strip() for v in self._pick(fields)]
            self.rows += 1
            if escape:
                body = "\t".join(values)
                if body.count("\t") != len(values) - 1 or any(c in body for c in _COPY_SPECIALS):
                    values = [_escape(v) for v in values]
            values.append(str(line))
            out.append("\t".join(values))
        return "".join([row + "\n" for row in out]).encode()

    def _header(self, fields: list[str], line: int) -> None:
        names = [f.strip().lower() for f in fields]
        unknown = [n for n in names if n not in COLUMNS]
        if unknown:
            hints = [
                f"{n!r} (did you mean {close[0]!r}?)"
                if (close := difflib.get_close_matches(n, COLUMNS, 1))
                else repr(n)
                for n in unknown
            ]
            raise CsvFormatError(line, f"unknown column(s): {', '.join(hints)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CsvFormatError(line, f"column(s) named twice: {', '.join(repeated)}")
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise CsvFormatError(line, f"missing column(s): {', '.join(missing)}")
        self._width = len(names)
        # A column the file leaves out reads as the empty field appended at the row's end.
        self._pick = itemgetter(*[names.index(c) if c in names else len(names) for c in COLUMNS])


def _plain(text: str) -> bool:
    """Whether text has nothing that needs the CSV reader or COPY's escapes."""
    return (
        '"' not in text
        and "\t" not in text
        and "\\" not in text
        and text.count("\r") == text.count("\r\n")
    )


def _split(line: str) -> list[str]:
    return line.split(",")


def _read(starts: list[int], records: list[str]) -> Iterator[list[str]]:
    """Each record as the CSV reader reads it (one record per string: starts[n] is its line)."""
    reader = csv.reader(records, strict=True)
    for line in starts:
        try:
            yield next(reader)
        except csv.Error as exc:
            raise CsvFormatError(line, f"the row cannot be read as CSV: {exc}") from None
