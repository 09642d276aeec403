"""What the hostile-input tests share: calls, table snapshots to compare, answer checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from services.logbook.settings import LogbookSettings
from services.registry.settings import RegistrySettings
from tests.conftest import eventually

PROBLEM_JSON = "application/problem+json"

# Columns a table changes on its own after a request has ended (the relay marks an event sent).
VOLATILE_COLUMNS = {"outbox": ("sent_at",)}
# Tables only the event consumers write (from events of earlier requests, at their own pace),
# and the consumers' own bookkeeping: a request does not write them.
CONSUMER_FED = (
    "household_ref",
    "organization_ref",
    "person_ref",
    "household_status_ref",
    "processed_event",
    "dead_letter",
    "consumer_%",
    "alembic_version",
)


async def snapshot_on(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """Every table of a service's database: its row count and a checksum of its rows."""
    tables = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
            "AND NOT table_name LIKE ANY($1::text[]) ORDER BY table_name",
            list(CONSUMER_FED),
        )
    ]
    parts = []
    for table in tables:
        volatile = VOLATILE_COLUMNS.get(table, ())
        row = f"(to_jsonb(t) - '{{{','.join(volatile)}}}'::text[])::text" if volatile else "t::text"
        # A sum of 64-bit row hashes: no sort, and any changed, added or removed row shows.
        parts.append(
            f"SELECT '{table}' AS name, count(*) AS n, "
            f'coalesce(sum(hashtextextended({row}, 0)::numeric), 0)::text AS sum FROM "{table}" t'
        )
    rows = await conn.fetch(" UNION ALL ".join(parts))
    return {r["name"]: (r["n"], r["sum"]) for r in rows}


def assert_no_server_error(response: httpx.Response, what: Any = "") -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:2000])


def assert_problem_4xx(response: httpx.Response, what: Any = "") -> dict[str, Any]:
    """A 4xx answer in RFC 9457 form, with its request ID."""
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith(PROBLEM_JSON), (what, response.headers)
    assert response.headers.get("x-request-id"), what
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["title"], (what, body)
    return body


def error_fields(problem: dict[str, Any]) -> set[str]:
    return {str(e["field"]) for e in problem.get("errors") or []}


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    headers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] | None = None
    content: bytes | None = None


class Ledger:
    """The two services' tables, to compare before and after each refused write."""

    def __init__(self, registry: asyncpg.Connection, logbook: asyncpg.Connection) -> None:
        self.registry = registry
        self.logbook = logbook
        self._last: Any = None

    @classmethod
    async def open(cls, registry: RegistrySettings, logbook: LogbookSettings) -> Ledger:
        return cls(
            await asyncpg.connect(registry.database_url.replace("+asyncpg", "")),
            await asyncpg.connect(logbook.database_url.replace("+asyncpg", "")),
        )

    async def close(self) -> None:
        await self.registry.close()
        await self.logbook.close()

    async def now(self) -> Any:
        """The tables as they are (compare with `settled()` from before a refused request)."""
        return await self._both()

    async def _both(self) -> Any:
        return (await snapshot_on(self.registry), await snapshot_on(self.logbook))

    async def settled(self) -> Any:
        """The tables once every event of earlier writes has been sent and applied."""

        async def quiet() -> Any:
            # The registry applies the logbook's visits and interventions (a household in
            # progress): wait until it has applied every one so far. The rest is synchronous,
            # or not compared (an event marked sent, the consumers' own tables).
            recorded = await self.logbook.fetch(
                "SELECT (payload->>'id')::uuid AS id FROM outbox WHERE payload->>'type' IN "
                "('logbook.visit.recorded', 'logbook.intervention.recorded')"
            )
            applied = await self.registry.fetchval(
                "SELECT count(*) FROM processed_event WHERE event_id = ANY($1::uuid[])",
                [r["id"] for r in recorded],
            )
            return await self._both() if applied == len(recorded) else None

        if self._last is None:
            self._last = await eventually(quiet, what="earlier writes settle")
        return self._last

    async def holds(self, value: str) -> bool:
        """Whether some row of either service holds this text exactly (in any column)."""
        needle = json.dumps(value, ensure_ascii=False)[1:-1]
        for conn in (self.registry, self.logbook):
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            found = await conn.fetchval(
                "SELECT "
                + " OR ".join(
                    f'EXISTS (SELECT 1 FROM "{t["table_name"]}" t '
                    "WHERE strpos(to_jsonb(t)::text, $1) > 0)"
                    for t in tables
                ),
                needle,
            )
            if found:
                return True
        return False

    def changed(self) -> None:
        """Something was written: the next comparison starts from a new snapshot."""
        self._last = None

    async def send(self, client: httpx.AsyncClient, call: Call, what: Any) -> httpx.Response:
        """Send a call; a refused one must leave every table as it was."""
        before = await self.settled()
        response = await client.request(
            call.method,
            call.path,
            json=call.body,
            content=call.content,
            params=call.params,
            headers=call.headers,
        )
        assert_no_server_error(response, what)
        if response.status_code >= 400:
            assert_problem_4xx(response, what)
            after = await self._both()
            assert after == before, ("a refused request changed data", what, diff(before, after))
        else:
            self.changed()
        return response


def diff(before: Any, after: Any) -> list[str]:
    return [
        f"{service}.{table}"
        for service, old, new in zip(("registry", "logbook"), before, after, strict=True)
        for table in sorted(set(old) | set(new))
        if old.get(table) != new.get(table)
    ]
