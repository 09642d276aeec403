"""What the history import tests share: entry rows, CSV files, and running an import to its end."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from services.logbook.imports.csvformat import COLUMNS
from tests.conftest import eventually

CSV = {"content-type": "text/csv"}
PATH = "/v1/imports/logbook"


def visit(household_id: str, key: str, **fields: Any) -> dict[str, Any]:
    """One valid visit row (no team) with changes."""
    return {
        "kind": "visit",
        "household_id": household_id,
        "at": "2025-03-05T10:30:00+07:00",
        "capitals": "34253",
        "note": "เยี่ยมบ้าน, คุยเรื่องอาชีพ",
        "entry_key": key,
        **fields,
    }


def entry(household_id: str, key: str, **fields: Any) -> dict[str, Any]:
    """One valid intervention row (income training, completed) with changes."""
    return {
        "kind": "intervention",
        "household_id": household_id,
        "at": "2025-03-20T09:00:00+07:00",
        "dimension": "income",
        "menu_code": "INC-02",
        "amount_thb": "1200.5",
        "status": "completed",
        "completed_at": "2025-04-10T16:00:00+07:00",
        "description": "อบรมทำขนมไทย 5 วัน",
        "entry_key": key,
        **fields,
    }


def csv_bytes(
    rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS, *, bom: bool = False
) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


async def finished(client: httpx.AsyncClient, import_id: str, **params: Any) -> dict[str, Any]:
    """The import once it is done or failed."""

    async def ended() -> dict[str, Any] | None:
        response = await client.get(f"{PATH}/{import_id}", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["state"] in ("done", "failed") else None

    result: dict[str, Any] = await eventually(ended, within=60, what=f"import {import_id} ends")
    return result


async def import_file(
    client: httpx.AsyncClient,
    body: bytes,
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """POST a file and wait for its import to end; return the final summary."""
    response = await client.post(
        PATH,
        content=body,
        headers={**CSV, **(headers or {})},
        params={"filename": filename} if filename else None,
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"{PATH}/{response.json()['id']}"
    return await finished(client, response.json()["id"], **params)


def rejected(summary: dict[str, Any]) -> dict[int, dict[str, str]]:
    """The rejected rows by line: {line: {column: reason}}."""
    by_line: dict[int, dict[str, str]] = {}
    for r in summary["rejected"]:
        by_line.setdefault(r["line"], {})[r["column"]] = r["reason"]
    return by_line
