"""The streaming CSV parser the services' bulk imports share.

It turns CSV bytes, as they arrive, into rows of PostgreSQL `COPY … FROM STDIN` text for a
staging table. It checks only what makes the file unreadable (encoding, header, field counts,
quoting): those stop the import. Everything about the values is the service's to check, in SQL.
A service names its file's columns and its staging table's; a staging column the file does not
have is the service's own, NULL until its parser's `_complete` works it out.
"""

from __future__ import annotations

import codecs
import csv
import difflib
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any

# A quoted field may hold line breaks, but not a whole file: past this, a quote was left open.
MAX_RECORD_CHARS = 64 * 1024
MAX_RECORD_LINES = 100
NULL = "\\N"
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
    """Feed it bytes as they arrive; it returns COPY text for the rows completed so far.

    `columns` are the file's (in any order in the file; `required` ones must be there),
    `stage_columns` the staging table's as COPY receives them, ending with `line`.
    """

    def __init__(
        self, columns: Sequence[str], required: Sequence[str], stage_columns: Sequence[str]
    ) -> None:
        assert stage_columns[-1] == "line"
        self._columns = tuple(columns)
        self._required = tuple(required)
        self._stage = tuple(stage_columns[:-1])
        # The staging columns the parser's service works out itself: neither read nor escaped.
        self._own = tuple(n for n, c in enumerate(self._stage) if c not in self._columns)
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._started = False
        self._pending = ""  # the text after the last line break seen
        self._record: list[str] = []  # the lines of a record whose quote is still open
        self._record_start = 0
        self._record_quotes = 0
        self._line = 0  # physical lines taken so far
        self._pick: itemgetter[Any] | None = None
        self._read: itemgetter[Any] | None = None  # of a picked row, the file's values
        self._width = 0
        self.rows = 0
        self.bytes = 0

    def _complete(self, rows: list[list[str]]) -> None:
        """Fill in the service's own columns of a batch of rows (COPY text, in place)."""

    # Bytes to lines

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

    # Lines to rows

    def _rows(self, records: Iterable[tuple[int, list[str]]], *, escape: bool) -> bytes:
        rows: list[list[str]] = []
        own = self._own
        padding = ("", *(NULL for _ in own))
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
            fields.extend(padding)
            values = [v.strip() for v in self._pick(fields)]
            self.rows += 1
            if escape:  # the file's own values; the service's columns are unescaped
                read = values if self._read is None else self._read(values)
                body = "\t".join(read)
                if body.count("\t") != len(read) - 1 or any(c in body for c in _COPY_SPECIALS):
                    values = [v if n in own else _escape(v) for n, v in enumerate(values)]
            values.append(str(line))
            rows.append(values)
        self._complete(rows)
        return "".join(["\t".join(row) + "\n" for row in rows]).encode()

    def _header(self, fields: list[str], line: int) -> None:
        names = [f.strip().lower() for f in fields]
        columns = self._columns
        unknown = [n for n in names if n not in columns]
        if unknown:
            hints = [
                f"{n!r} (did you mean {close[0]!r}?)"
                if (close := difflib.get_close_matches(n, columns, 1))
                else repr(n)
                for n in unknown
            ]
            raise CsvFormatError(line, f"unknown column(s): {', '.join(hints)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CsvFormatError(line, f"column(s) named twice: {', '.join(repeated)}")
        missing = [c for c in self._required if c not in names]
        if missing:
            raise CsvFormatError(line, f"missing column(s): {', '.join(missing)}")
        self._width = len(names)
        # Picks a row's values in the staging table's order (the line goes last): a column the
        # file leaves out reads as the empty field appended at the row's end, each of the
        # service's own columns as one of the NULLs appended after it.
        own = iter(range(len(names) + 1, len(names) + 1 + len(self._own)))
        self._pick = itemgetter(
            *[
                (names.index(c) if c in names else len(names)) if c in columns else next(own)
                for c in self._stage
            ]
        )
        if self._own:
            self._read = itemgetter(*[n for n in range(len(self._stage)) if n not in self._own])


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
