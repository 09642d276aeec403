"""`pinpoint generate households` and `pinpoint import households`: the target list as CSV."""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import sys
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from pinpoint.demo import settings_from
from services.registry.imports.generate import generate_households
from services.registry.imports.jobs import Importer
from services.registry.schemas import ImportPublic
from services.registry.settings import RegistrySettings
from shared.auth import Caller, Role
from shared.db import create_engine
from shared.imports.jobs import Progress as JobProgress
from shared.imports.schemas import RejectedRow
from shared.pii import CitizenIdVault

console = Console(stderr=True)
generate_app = typer.Typer(help="Generate realistic data files.", no_args_is_help=True)
import_app = typer.Typer(help="Import data files into the services.", no_args_is_help=True)

CHUNK = 1024 * 1024
DEFAULT_DATA_DIR = Path.home() / ".pinpoint"

# The options every `pinpoint import …` command takes.
DataDirOption = Annotated[
    Path, typer.Option(envvar="PINPOINT_DATA_DIR", help="Where `pinpoint up` keeps its data")
]
DatabaseUrlOption = Annotated[
    str | None, typer.Option(envvar="DATABASE_URL", help="A running PostgreSQL server")
]
RejectsOption = Annotated[
    Path | None, typer.Option(help="Write every rejected row here (line, column, reason)")
]


@generate_app.command("households")
def generate_households_command(
    households: Annotated[int, typer.Option(min=1, help="How many households")] = 1000,
    seed: Annotated[int, typer.Option(help="The same seed gives the same file")] = 2565,
    area: Annotated[str | None, typer.Option(help="Only this province/district/…")] = None,
    out: Annotated[Path | None, typer.Option(help="The file (standard output if none)")] = None,
) -> None:
    """Write a target-list CSV in the import format: real sub-districts, Thai names."""
    try:
        write_out(generate_households(households, seed=seed, area=area), out)
        if out is None:
            return
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"wrote {households} households to {out}")


def write_out(chunks: Iterable[str], out: Path | None) -> None:
    """A generated file to `out`, or to standard output."""
    if out is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    with out.open("w", encoding="utf-8", newline="") as f:
        for chunk in chunks:
            f.write(chunk)


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows", 0)
        elapsed = task.elapsed or 0
        rate = rows / elapsed if elapsed else 0
        return Text(f"{rows:,} rows  {rate:,.0f} rows/s")


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def _import(
    settings: RegistrySettings, path: Path, size: int, caller: Caller, rejects: Path | None
) -> ImportPublic:
    engine = create_engine(settings)
    vault = CitizenIdVault(
        settings.pii_key.get_secret_value(), settings.blind_index_key.get_secret_value()
    )
    importer = Importer(engine, vault, namespace=settings.events_namespace)
    try:
        return await run_import(importer, caller, path, size, rejects)
    finally:
        await engine.dispose()


class _Summary(Protocol):
    @property
    def rejected(self) -> Sequence[RejectedRow]: ...
    @property
    def next_cursor(self) -> str | None: ...


S = TypeVar("S", bound=_Summary, covariant=True)


class _Importer(Protocol[S]):
    async def create(self, caller: Caller, filename: str | None = None) -> UUID: ...
    async def stage(
        self, job_id: UUID, source: AsyncIterable[bytes], *, progress: JobProgress | None = None
    ) -> None: ...
    async def complete(self, job_id: UUID, caller: Caller, headers: dict[str, str]) -> Any: ...
    async def summary(
        self, job_id: UUID, caller: Caller, *, cursor: str | None = None, limit: int = 100
    ) -> S: ...


async def run_import(
    importer: _Importer[S], caller: Caller, path: Path, size: int, rejects: Path | None
) -> S:
    """A whole import with a progress bar; every rejected row to `rejects` if given; the
    summary with the first 20 rejected rows."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("staging", total=size, rows=0)

        def moved(bytes_read: int, rows: int) -> None:
            progress.update(task, completed=bytes_read, rows=rows)

        job_id = await importer.create(caller, path.name)
        try:
            await importer.stage(job_id, _read(path), progress=moved)
        except Exception:
            return await importer.summary(job_id, caller, limit=20)
        progress.update(task, description="checking and moving in")
        try:
            await importer.complete(job_id, caller, {})
        except Exception:
            return await importer.summary(job_id, caller, limit=20)
        progress.update(task, description="done")
    if rejects is not None:
        await _write_rejects(importer, job_id, caller, rejects)
    return await importer.summary(job_id, caller, limit=20)


async def _write_rejects(
    importer: _Importer[_Summary], job_id: UUID, caller: Caller, path: Path
) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "column", "reason"])
        cursor: str | None = None
        while True:
            page = await importer.summary(job_id, caller, cursor=cursor, limit=5000)
            writer.writerows([r.line, r.column, r.reason] for r in page.rejected)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


def print_rejected(summary: _Summary) -> None:
    """The summary's page of rejected rows, as a table."""
    if summary.rejected:
        rejected = Table("line", "column", "reason", title="rejected rows (first 20)")
        for r in summary.rejected:
            rejected.add_row(str(r.line), r.column, r.reason)
        console.print(rejected)


def local_env(
    data_dir: Path,
    database_url: str | None,
    database: str,
    *,
    nats_url: str | None = None,
    needs_nats: bool = False,
) -> dict[str, str]:
    """A service's `PINPOINT_*` settings for a command run beside `pinpoint up`: its keys and
    the local servers from the data folder, unless URLs of other servers are given."""
    secrets_file = data_dir / "secrets.json"
    env: dict[str, str] = {}
    if secrets_file.exists():
        env.update(json.loads(secrets_file.read_text()))
    ports_file = data_dir / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}

    def local(server: str) -> int:
        if server not in ports:
            raise typer.BadParameter(f"no local {server} here; run `pinpoint up` or give its URL")
        return int(ports[server])

    url = make_url(database_url or f"postgresql://postgres@127.0.0.1:{local('postgres')}")
    url = url.set(drivername="postgresql+asyncpg", database=url.database or database)
    env["PINPOINT_DATABASE_URL"] = url.render_as_string(hide_password=False)
    if needs_nats:
        env["PINPOINT_NATS_URL"] = nats_url or f"nats://127.0.0.1:{local('nats')}"
    return env


@import_app.command("households")
def import_households_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV file")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
    area: Annotated[str, typer.Option(help="Import only inside this area")] = "TH",
    rejects: RejectsOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as GET /v1/imports/{id} does")
    ] = False,
) -> None:
    """Import a target-list CSV straight into the registry's database, as the API would."""
    env = local_env(data_dir.expanduser(), database_url, "registry")
    settings = settings_from(RegistrySettings, env)
    caller = Caller(subject=f"cli:{getpass.getuser()}", role=Role.national_admin, area=area)
    summary = asyncio.run(_import(settings, file, file.stat().st_size, caller, rejects))
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        _print(summary)
    if summary.state != "done":
        raise typer.Exit(1)


def _print(summary: ImportPublic) -> None:
    table = Table(show_header=False)
    for key in (
        "id",
        "state",
        "rows_read",
        "rows_imported",
        "rows_rejected",
        "households_imported",
        "error",
    ):
        value = getattr(summary, key)
        if value is not None:
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
    print_rejected(summary)


def register(app: typer.Typer) -> None:
    """Add `generate` and `import` to the pinpoint command."""
    app.add_typer(generate_app, name="generate")
    app.add_typer(import_app, name="import")
