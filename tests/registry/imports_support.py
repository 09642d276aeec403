"""What the import tests share: CSV files built from rows, and running an import to its end."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from services.registry.imports.csvformat import COLUMNS
from tests.conftest import eventually
from tests.registry.support import citizen_id

CSV = {"content-type": "text/csv"}


def row(**fields: Any) -> dict[str, Any]:
    """One valid person row (a head of household in Mueang Chachoengsao) with changes."""
    values: dict[str, Any] = {
        "house_code": "",
        "household_key": "",
        "area_code": "240101",
        "address": "12 หมู่ 3",
        "survey_year": "2566",
        "failed_indicators": "2560-04|2560-20",
        "lat": "",
        "lon": "",
        "citizen_id": citizen_id(),
        "title": "นาย",
        "first_name": "สมชาย",
        "last_name": "ใจดี",
        "sex": "male",
        "birth_date": "1970-05-01",
        "relation": "head",
        "disability": "false",
        "welfare_card": "true",
    }
    values.update(fields)
    return values


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    return out.getvalue()


def csv_bytes(rows: list[dict[str, Any]], *, bom: bool = False) -> bytes:
    return ("\ufeff" if bom else "").encode() + csv_text(rows).encode()


async def finished(client: httpx.AsyncClient, import_id: str, **params: Any) -> dict[str, Any]:
    """The import once it is done or failed."""

    async def ended() -> dict[str, Any] | None:
        response = await client.get(f"/v1/imports/{import_id}", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["state"] in ("done", "failed") else None

    result: dict[str, Any] = await eventually(ended, within=60, what=f"import {import_id} ends")
    return result


async def import_file(client: httpx.AsyncClient, body: bytes, **params: Any) -> dict[str, Any]:
    """POST a file and wait for its import to end; return the final summary."""
    response = await client.post("/v1/imports/households", content=body, headers=CSV)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/imports/{response.json()['id']}"
    return await finished(client, response.json()["id"], **params)


def rejected(summary: dict[str, Any]) -> dict[int, dict[str, str]]:
    """The rejected rows by line: {line: {column: reason}}."""
    by_line: dict[int, dict[str, str]] = {}
    for r in summary["rejected"]:
        by_line.setdefault(r["line"], {})[r["column"]] = r["reason"]
    return by_line
