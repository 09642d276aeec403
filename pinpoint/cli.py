"""`pinpoint`: run the whole system on one machine, one service, migrations or the demo data."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from pinpoint import demo as demo_data
from pinpoint.devservers import LocalNats, LocalPostgres, wait_for_port
from pinpoint.services import SERVICES
from shared.auth import Caller, Role
from shared.logging import configure_logging
from shared.migrations import upgrade

app = typer.Typer(
    help="pinpoint: target households, mentor teams, logbook and progress.", no_args_is_help=True
)
console = Console()

DataDir = Annotated[
    Path, typer.Option(envvar="PINPOINT_DATA_DIR", help="Where PostgreSQL, NATS and dev keys live")
]
DEFAULT_DATA_DIR = Path.home() / ".pinpoint"
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        envvar="DATABASE_URL", help="A running PostgreSQL server (postgresql://user@host:port)"
    ),
]
NatsUrl = Annotated[
    str | None, typer.Option(envvar="NATS_URL", help="A running NATS server with JetStream")
]


def _secrets(data_dir: Path) -> dict[str, str]:
    """Development keys, made once per data folder and reused by every later run."""
    path = data_dir / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "PINPOINT_INTERNAL_KEY": secrets.token_urlsafe(48),
        "PINPOINT_PII_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "PINPOINT_BLIND_INDEX_KEY": secrets.token_urlsafe(48),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def _service_database_url(server_url: str, database: str) -> str:
    url = make_url(server_url)
    return url.set(drivername="postgresql+asyncpg", database=database).render_as_string(
        hide_password=False
    )


def _service_env(name: str, server_url: str, nats_url: str, keys: dict[str, str]) -> dict[str, str]:
    spec = SERVICES[name]
    env = {**keys, "PINPOINT_NATS_URL": nats_url, "PINPOINT_SERVICE_NAME": name}
    if spec.database is not None:
        env["PINPOINT_DATABASE_URL"] = _service_database_url(server_url, spec.database)
    return env


def _migrate_all(server_url: str) -> None:
    for spec in SERVICES.values():
        if spec.migrations is not None and spec.database is not None:
            console.print(f"[bold]migrate[/] {spec.name}")
            upgrade(spec.migrations, _service_database_url(server_url, spec.database))


@app.command()
def migrate(
    database_url: DatabaseUrl = None,
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
) -> None:
    """Bring every service's database (or one) to the newest migration."""
    if database_url is None:
        raise typer.BadParameter("give --database-url or DATABASE_URL")
    for spec in SERVICES.values():
        if (service is None or spec.name == service) and spec.migrations and spec.database:
            console.print(f"[bold]migrate[/] {spec.name}")
            upgrade(spec.migrations, _service_database_url(database_url, spec.database))


# Inside Kubernetes' default 30 s between SIGTERM and SIGKILL, with room for the lifespan.
GRACEFUL_SHUTDOWN_SECONDS = 25


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    host: str = "0.0.0.0",  # noqa: S104 - a container listens on all its interfaces
    port: Annotated[
        int | None, typer.Option(envvar="PORT", help="Default: the service's own port")
    ] = None,
) -> None:
    """Run one service, as a container would (settings from PINPOINT_* variables).

    On SIGTERM it stops taking requests, finishes those in flight (up to 25 s), then stops
    the outbox relay and the consumers between two messages.
    """
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service}; known: {', '.join(SERVICES)}")
    spec = SERVICES[service]
    settings = spec.settings_class()
    configure_logging(settings.log_level, json=settings.log_json)
    uvicorn.run(
        spec.create_app(settings),
        host=host,
        port=port or spec.default_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@app.command()
def demo(data_dir: DataDir = DEFAULT_DATA_DIR, database_url: DatabaseUrl = None) -> None:
    """Load the demo province into running services: households, then a logbook history."""
    keys = _secrets(data_dir)
    server_url = database_url or _local_postgres_url(data_dir)
    count = asyncio.run(demo_data.load_registry(_service_env("registry", server_url, "", keys)))
    console.print(f"demo: {count} households loaded" if count else "demo: households present")
    history = asyncio.run(
        demo_data.load_history(
            _service_env("registry", server_url, "", keys),
            _service_env("logbook", server_url, "", keys),
        )
    )
    console.print(f"demo: logbook history {history}" if history else "demo: history present")


def _local_postgres_url(data_dir: Path) -> str:
    port_file = data_dir / "ports.json"
    if not port_file.exists():
        raise typer.BadParameter("no local servers here; run `pinpoint up` or give a URL")
    return f"postgresql://postgres@127.0.0.1:{json.loads(port_file.read_text())['postgres']}"


def _wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout}s")


def _check_gateway(url: str, data_dir: Path) -> None:
    """The gateway refuses a request without a token and lets `pinpoint token`'s through."""
    anonymous = httpx.get(f"{url}/v1/households", timeout=10)
    if anonymous.status_code != 401:
        raise RuntimeError(f"the gateway answered {anonymous.status_code} without a token")
    caller = Caller(subject="pinpoint-up-check", role=Role.national_admin, area="TH")
    token = token_commands.dev_token(data_dir, caller, ttl_minutes=1)
    answer = httpx.get(
        f"{url}/v1/households", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    if answer.status_code != 200:
        raise RuntimeError(f"the gateway refused a development token: {answer.text}")
    console.print("gateway: refuses requests without a token, accepts `pinpoint token`'s")


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    nats_url: NatsUrl = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also load the demo province")] = False,
    demo_households: Annotated[
        int, typer.Option(help="Households in the demo (the province's real figure by default)")
    ] = 6_461,
    postgres_port: int = 5433,
    nats_port: int = 4223,
    registry_port: Annotated[int, typer.Option(help="Port of the registry service")] = 8101,
    logbook_port: Annotated[int, typer.Option(help="Port of the logbook service")] = 8102,
    analytics_port: Annotated[int, typer.Option(help="Port of the analytics service")] = 8103,
    gateway_port: Annotated[int, typer.Option(help="Port of the gateway")] = 8100,
    host: str = "127.0.0.1",
    detach_check: Annotated[
        bool, typer.Option("--check", help="Start everything, check it answers, then stop (for CI)")
    ] = False,
) -> None:
    """Start PostgreSQL, NATS, migrations and every service; Ctrl-C stops all of it."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = _secrets(data_dir)
    postgres = nats = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        if database_url is None:
            postgres = LocalPostgres(data_dir / "postgres", port=postgres_port)
            console.print(f"[bold]postgres[/] starting in {postgres.data_dir}")
            postgres.start()
            database_url = postgres.url.rsplit("/", 1)[0]
            (data_dir / "ports.json").write_text(
                json.dumps({"postgres": postgres_port, "nats": nats_port})
            )
        if nats_url is None:
            nats = LocalNats(data_dir / "nats" / "jetstream", port=nats_port)
            console.print(f"[bold]nats[/] starting in {nats.store_dir}")
            nats.start()
            nats_url = nats.url
        _migrate_all(database_url)
        if demo:
            count = asyncio.run(
                demo_data.load_registry(
                    _service_env("registry", database_url, nats_url, keys),
                    households=demo_households,
                )
            )
            console.print(
                f"[bold]demo[/] {count} households loaded"
                if count
                else "[bold]demo[/] already loaded"
            )
        ports = {
            "registry": registry_port,
            "logbook": logbook_port,
            "analytics": analytics_port,
            "gateway": gateway_port,
        }
        table = Table("service", "url")
        for name, port in ports.items():
            env = {
                **os.environ,
                **_service_env(name, database_url, nats_url, keys),
                "PINPOINT_REGISTRY_URL": f"http://{host}:{registry_port}",
                "PINPOINT_LOGBOOK_URL": f"http://{host}:{logbook_port}",
                "PINPOINT_ANALYTICS_URL": f"http://{host}:{analytics_port}",
            }
            if name == "gateway":  # only the gateway holds the key that signs tokens
                env["PINPOINT_SIGNING_KEY"] = token_commands.dev_signing_key(data_dir)
            env.setdefault("PINPOINT_LOG_JSON", "false")
            children.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [
                        sys.executable,
                        "-m",
                        "pinpoint",
                        "serve",
                        name,
                        "--host",
                        host,
                        "--port",
                        str(port),
                    ],
                    env=env,
                    start_new_session=True,
                )
            )
            table.add_row(name, f"http://{host}:{port}  (docs: /docs, health: /readyz)")
        gateway_url = f"http://{host}:{gateway_port}"
        for port in ports.values():
            wait_for_port(port, timeout=60)
            _wait_healthy(f"http://{host}:{port}")
        table.add_row("postgres", database_url)
        table.add_row("nats", nats_url)
        if demo:
            console.print("[bold]demo[/] writing the logbook history through the services…")
            history = asyncio.run(
                demo_data.load_history(
                    _service_env("registry", database_url, nats_url, keys),
                    _service_env("logbook", database_url, nats_url, keys),
                )
            )
            console.print(
                f"[bold]demo[/] logbook history: {history}"
                if history
                else "[bold]demo[/] logbook history already present"
            )
        console.print(table)
        console.print(f"[bold]API[/] {gateway_url}/v1  (docs: {gateway_url}/docs)")
        console.print("a token: pinpoint token --role national_admin --area TH")
        if detach_check:
            _check_gateway(gateway_url, data_dir)
            console.print("[green]all services answer[/]")
            return
        console.print("pinpoint is up. Press Ctrl-C to stop.")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()


def main() -> None:
    app()


if __name__ == "__main__":
    main()


# `pinpoint generate households` and `pinpoint import households` (the target list as CSV).
from pinpoint import import_commands  # noqa: E402

import_commands.register(app)

# `pinpoint analytics rebuild` and `pinpoint analytics dead-letters`.
from pinpoint import analytics_commands  # noqa: E402

analytics_commands.register(app)

# `pinpoint bench`: the proof at a size (bench/proof.py).
from pinpoint import bench_commands  # noqa: E402

bench_commands.register(app)

# `pinpoint token` and `pinpoint oauth-client` (credentials for the gateway).
from pinpoint import token_commands  # noqa: E402

token_commands.register(app)

# `pinpoint generate logbook` and `pinpoint import logbook` (logbook history as CSV).
import getpass  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from pinpoint.demo import settings_from  # noqa: E402
from services.logbook.imports.generate import generate_logbook, read_households  # noqa: E402
from services.logbook.imports.jobs import Importer as HistoryImporter  # noqa: E402
from services.logbook.schemas import LogbookImportPublic  # noqa: E402
from services.logbook.settings import LogbookSettings  # noqa: E402
from shared.db import create_engine  # noqa: E402


@import_commands.generate_app.command("logbook")
def generate_logbook_command(
    households: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="A CSV of household_id,area_code,team_id to write for"
        ),
    ],
    entries: Annotated[int, typer.Option(min=1, help="How many logbook entries")] = 10_000,
    seed: Annotated[int, typer.Option(help="The same seed gives the same file")] = 2567,
    years: Annotated[int, typer.Option(min=1, max=20, help="Over how many years")] = 3,
    until: Annotated[
        str | None,
        typer.Option(help="The newest time an entry may have (ISO 8601); today 00:00 +07:00"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="The file (standard output if none)")] = None,
) -> None:
    """Write a logbook history CSV in the import format: visits every one to three months,
    interventions from the real catalogue, in time order per household."""
    try:
        end = (
            datetime.fromisoformat(until)
            if until
            else datetime.now(timezone(timedelta(hours=7))).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
        )
        with households.open(encoding="utf-8-sig", newline="") as f:
            count = sum(1 for line in f if line.strip()) - 1
        with households.open(encoding="utf-8-sig", newline="") as f:
            chunks = generate_logbook(
                read_households(f), count, entries, seed=seed, years=years, until=end
            )
            import_commands.write_out(chunks, out)
            if out is None:
                return
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    import_commands.console.print(f"wrote {entries} entries for {count} households to {out}")


@import_commands.import_app.command("logbook")
def import_logbook_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV file")],
    data_dir: import_commands.DataDirOption = import_commands.DEFAULT_DATA_DIR,
    database_url: import_commands.DatabaseUrlOption = None,
    area: Annotated[
        str, typer.Option(help="Import only inside this area (TH or a province)")
    ] = "TH",
    rejects: import_commands.RejectsOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as GET /v1/imports/logbook/{id} does")
    ] = False,
) -> None:
    """Import a logbook history CSV straight into the logbook's database, as the API would
    (the running logbook's outbox relay publishes its events)."""
    env = import_commands.local_env(data_dir.expanduser(), database_url, "logbook")
    settings = settings_from(LogbookSettings, env)
    caller = Caller(subject=f"cli:{getpass.getuser()}", role=Role.national_admin, area=area)
    summary = asyncio.run(_import_logbook(settings, file, file.stat().st_size, caller, rejects))
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        table = Table(show_header=False)
        for key, value in summary.model_dump(exclude={"rejected", "next_cursor"}).items():
            if value is not None and key not in ("kind", "created_at", "created_by"):
                table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        import_commands.console.print(table)
        import_commands.print_rejected(summary)
    if summary.state != "done":
        raise typer.Exit(1)


async def _import_logbook(
    settings: LogbookSettings, path: Path, size: int, caller: Caller, rejects: Path | None
) -> LogbookImportPublic:
    engine = create_engine(settings)
    importer = HistoryImporter(
        engine,
        namespace=settings.events_namespace,
        follow_up_days=settings.follow_up_days_without_problems,
    )
    try:
        return await import_commands.run_import(importer, caller, path, size, rejects)
    finally:
        await engine.dispose()
