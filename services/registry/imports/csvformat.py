"""The target-list CSV format (docs/import-format.md) and its streaming parser.

The parser turns CSV bytes, as they arrive, into rows of PostgreSQL `COPY … FROM STDIN` text
for the staging table. It checks only what makes the file unreadable (encoding, header, field
counts, quoting): those stop the import. Everything about the values is checked in SQL: a
row's own values as COPY writes it (the staging table's generated columns), the rest across rows
after the upload. Citizen IDs that look like 13 digits are encrypted and blind-indexed here, so the
database never computes them one row at a time.
"""

from __future__ import annotations

from shared.imports import csvparser
from shared.imports.csvparser import CsvFormatError
from shared.pii import CitizenIdVault
from shared.thai import mask_citizen_id

# The file's columns, in the order of the staging table (after `line`).
HOUSEHOLD_COLUMNS = (
    "house_code",
    "household_key",
    "area_code",
    "address",
    "survey_year",
    "failed_indicators",
    "lat",
    "lon",
)
PERSON_COLUMNS = (
    "citizen_id",
    "title",
    "first_name",
    "last_name",
    "sex",
    "birth_date",
    "relation",
    "disability",
    "welfare_card",
)
COLUMNS = HOUSEHOLD_COLUMNS + PERSON_COLUMNS
OPTIONAL_COLUMNS = frozenset({"household_key", "lat", "lon"})
REQUIRED_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)
# The staging table's columns, as COPY receives them (from each row of the parser's output).
STAGE_COLUMNS = (
    *HOUSEHOLD_COLUMNS,
    "citizen_id",
    "citizen_id_cipher",
    "citizen_id_index",
    "citizen_id_masked",
    *PERSON_COLUMNS[1:],
    "line",
)

__all__ = [
    "COLUMNS",
    "HOUSEHOLD_COLUMNS",
    "OPTIONAL_COLUMNS",
    "PERSON_COLUMNS",
    "REQUIRED_COLUMNS",
    "STAGE_COLUMNS",
    "CsvFormatError",
    "CsvParser",
]

_CITIZEN_ID = STAGE_COLUMNS.index("citizen_id")
_CIPHER = STAGE_COLUMNS.index("citizen_id_cipher")


class CsvParser(csvparser.CsvParser):
    """Feed it bytes as they arrive; it returns COPY text for the rows completed so far."""

    def __init__(self, vault: CitizenIdVault) -> None:
        super().__init__(COLUMNS, REQUIRED_COLUMNS, STAGE_COLUMNS)
        self._vault = vault

    def _complete(self, rows: list[list[str]]) -> None:
        """Citizen IDs that look like 13 digits: encrypted, blind-indexed and masked together."""
        ids: list[str] = []
        at: list[int] = []  # the rows they are on
        for n, row in enumerate(rows):
            digits = row[_CITIZEN_ID].replace("-", "").replace(" ", "")
            if len(digits) == 13 and digits.isascii() and digits.isdigit():
                row[_CITIZEN_ID] = digits
                at.append(n)
                ids.append(digits)
        vault = self._vault
        for n, digits, cipher in zip(at, ids, vault.encrypt_many(ids), strict=True):
            row = rows[n]
            row[_CIPHER] = "\\\\x" + cipher.hex()
            row[_CIPHER + 1] = "\\\\x" + vault.blind_index(digits).hex()
            row[_CIPHER + 2] = mask_citizen_id(digits)
