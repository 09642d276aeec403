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

from shared.imports import csvparser
from shared.imports.csvparser import CsvFormatError

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

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "STAGE_COLUMNS", "CsvFormatError", "CsvParser"]


class CsvParser(csvparser.CsvParser):
    """Feed it bytes as they arrive; it returns COPY text for the rows completed so far."""

    def __init__(self) -> None:
        super().__init__(COLUMNS, REQUIRED_COLUMNS, STAGE_COLUMNS)
