"""The async database engine and the one-transaction-per-request session scope."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from itertools import groupby
from typing import Annotated, Any

import asyncpg
import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy import Executable, Result, Table, text
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.settings import ServiceSettings


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    """An engine with a bounded pool; made once per process, in the app's lifespan."""
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": settings.service_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block ends, roll back if it raises."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


EVENTS_STAGED = "pinpoint.events_staged"


def mark_events_staged(session: AsyncSession) -> None:
    """Note that this transaction wrote outbox rows, so the relay is woken when it commits."""
    session.info[EVENTS_STAGED] = True


# A request's state may hold a factory of the transaction its session runs in: the
# idempotency middleware's, which claims the request's key first and commits the write
# together with the answer it keeps for a replay.
REQUEST_TRANSACTION_STATE = "pinpoint_request_transaction"


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    owned = getattr(request.state, REQUEST_TRANSACTION_STATE, None)
    if owned is not None:
        async with owned() as session:
            yield session
        return
    # scope="function" below makes this commit before the response is sent, so a failed
    # commit becomes an error answer rather than a 2xx for a write that did not happen.
    async with transaction(request.app.state.sessionmaker) as session:
        yield session
    if session.info.get(EVENTS_STAGED):
        # Publish now rather than at the relay's next tick: events follow writes in ms.
        relay = getattr(request.app.state, "relay", None)
        if relay is not None:
            relay.wake()


SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def database_ready(engine: AsyncEngine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def run(session: AsyncSession, statement: Executable) -> Result[Any]:
    """Run a Core statement in the session's transaction (SQLModel's `exec` wants its own types)."""
    connection = await session.connection()
    return await connection.execute(statement)


def table_of(model: type[SQLModel]) -> Table:
    """A model's table, for Core statements on bulk paths: rows go in and come out as plain
    values, with no ORM object each (making one costs tens of microseconds, and the ORM's bulk
    insert sorts its rows into its own batches first)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _by_columns(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by the columns they set, in their order within each group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return groups


def _given(
    table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]], *, ordinality: str = ""
) -> Any:
    """`unnest(<one array a column>) AS given(<names>)`: the rows as one parameter a column,
    typed as the table's columns (JSON values travel as text: an array parameter's type is
    guessed from its first element, and a JSON list there would make it two-dimensional). The
    statement's text is the same for any number of rows: compiled once, parsed once a
    connection. With `ordinality`, a column of that name numbers the rows from 1."""
    arrays: list[Any] = []
    for name in names:
        kind = table.c[name].type
        values = [row[name] for row in rows]
        if isinstance(kind, sa.ARRAY):
            raise TypeError(f"{table.name}.{name}: unnest would flatten an array column")
        if isinstance(kind, sa.JSON):
            texts = [None if v is None else json.dumps(v) for v in values]
            arrays.append(sa.cast(sa.bindparam(name, texts, type_=ARRAY(sa.Text)), ARRAY(kind)))
        else:
            arrays.append(sa.bindparam(name, values, type_=ARRAY(kind)))
    given = sa.func.unnest(*arrays).table_valued(*names, with_ordinality=ordinality or None)
    return given.render_derived(name="given")


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Callable[[Insert, Sequence[str]], Insert] | None = None,
) -> None:
    """Insert many rows of one table, as plain values (bulk paths), in their order (an
    identity column numbers them so): `INSERT INTO table (...) SELECT ... FROM unnest(...)`, one
    statement for each run of rows that set the same columns; `conflict(statement, columns)`
    adds an `ON CONFLICT` clause. A column a row leaves out takes the server's default: give
    every column whose default is made in Python (an `id`). (Rows given as a list of parameters
    go as one `INSERT` a row, each bound and run on its own.)"""
    for names, run_of_rows in groupby(rows, key=lambda row: tuple(sorted(row))):
        given = _given(table, names, list(run_of_rows), ordinality="n")
        source = sa.select(*(given.c[name] for name in names)).order_by(given.c.n)
        statement = insert(table).from_select(list(names), source, include_defaults=False)
        await run(session, conflict(statement, names) if conflict is not None else statement)


async def update_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Set columns of many rows, each found by its `id`: one statement for all the rows that
    set the same columns, `UPDATE ... FROM unnest(<one array a column>)`. (The ORM's flush
    sends one single-row UPDATE a row; the server then plans and runs each alike.)"""
    for names, group in _by_columns(rows).items():
        values = _given(table, names, group)
        statement = (
            sa.update(table)
            .values({name: values.c[name] for name in names if name != "id"})
            .where(table.c.id == values.c.id)
        )
        await run(session, statement)


def one_of(column: Any, values: Iterable[Any]) -> Any:
    """`column = ANY($1)`: the values as one array parameter. (`IN (...)` takes a parameter a
    value: a statement whose text changes with the list's length, compiled again in Python
    for each length, hundreds of parameters a batch. The planner, though, then knows how many
    values there are: see the registry's `member_counts`.)"""
    return column == sa.any_(sa.literal(list(values), ARRAY(column.type)))


def starts_with(column: Any, prefix: str) -> Any:
    """`column LIKE 'prefix%'` with the prefix's own wildcards escaped (uses a pattern index)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


# What PostgreSQL itself says while it shuts down or starts up (SQLSTATE 57P01–57P03).
_SERVER_AWAY = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


# What PostgreSQL says when it broke a transaction off so that another could go on (SQLSTATE
# 40001, 40P01): nothing of it stands, and the same work tried again goes through.
_BROKEN_OFF = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The error that says what happened. The asyncpg dialect raises a generic DBAPI error for
    most of asyncpg's own: the one it wraps (the cause of `orig`) says it."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return None if orig is None else (orig.__cause__ or orig)
    return exc


def broken_off(exc: BaseException) -> bool:
    """Whether PostgreSQL ended the transaction because it met another at the same rows (a
    deadlock, a serialization failure) rather than because the work itself cannot be done."""
    return isinstance(_driver_error(exc), _BROKEN_OFF)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error says the database is away (a lost or refused connection, a server
    shutting down or starting up) rather than that the work itself cannot be done."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        return True
    return isinstance(_driver_error(exc), (OSError, *_SERVER_AWAY))
