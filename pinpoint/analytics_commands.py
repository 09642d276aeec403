"""`pinpoint analytics rebuild` and `pinpoint analytics dead-letters`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from pinpoint.demo import settings_from
from pinpoint.import_commands import local_env
from services.analytics.rebuild import rebuild
from services.analytics.settings import AnalyticsSettings
from shared.consumer import dead_letter_rows
from shared.db import create_engine, create_sessionmaker

console = Console(stderr=True)
analytics_app = typer.Typer(help="The analytics projections.", no_args_is_help=True)

DataDir = Annotated[
    Path, typer.Option(envvar="PINPOINT_DATA_DIR", help="Where `pinpoint up` keeps its data")
]
DatabaseUrl = Annotated[
    str | None, typer.Option(envvar="DATABASE_URL", help="A running PostgreSQL server")
]
NatsUrl = Annotated[str | None, typer.Option(envvar="NATS_URL", help="A running NATS server")]
DEFAULT_DATA_DIR = Path.home() / ".pinpoint"


def _settings(data_dir: Path, database_url: str | None, nats_url: str | None) -> AnalyticsSettings:
    env = local_env(
        data_dir.expanduser(), database_url, "analytics", nats_url=nats_url, needs_nats=True
    )
    return settings_from(AnalyticsSettings, env)


@analytics_app.command("rebuild")
def rebuild_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    nats_url: NatsUrl = None,
) -> None:
    """Build every projection again from the start of both streams into fresh tables, then
    swap them in; the live ones answer and keep up until the swap."""
    settings = _settings(data_dir, database_url, nats_url)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(stream: str, done: int, total: int) -> None:
            if stream not in tasks:
                tasks[stream] = bar.add_task(stream, total=total)
            bar.update(tasks[stream], completed=done, total=total)

        report = asyncio.run(rebuild(settings, progress=advance))
    for stream, applied in report.applied.items():
        console.print(f"{stream}: {applied:,} events applied")
    console.print(
        f"[green]rebuilt[/] in {report.seconds:.1f} s; the swap held the consumers "
        f"{report.swap_seconds * 1000:.0f} ms"
    )


@analytics_app.command("dead-letters")
def dead_letters_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    limit: Annotated[int, typer.Option(help="How many of the newest")] = 100,
) -> None:
    """Events the consumers gave up on, newest first, as JSON lines."""
    env = local_env(data_dir.expanduser(), database_url, "analytics")
    settings = settings_from(AnalyticsSettings, env)

    async def rows() -> list[dict[str, object]]:
        engine = create_engine(settings)
        try:
            return await dead_letter_rows(create_sessionmaker(engine), limit)
        finally:
            await engine.dispose()

    for row in asyncio.run(rows()):
        print(json.dumps(row, default=str, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add `analytics` to the pinpoint command."""
    app.add_typer(analytics_app, name="analytics")
