"""`pinpoint token` and `pinpoint oauth-client`: credentials the gateway accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console

from services.gateway.passwords import hash_secret, new_secret
from services.gateway.settings import GatewaySettings, OAuthClient
from services.gateway.tokens import load_signing_key, sign_token
from shared.auth import Caller, Role
from shared.thai import area_level

console = Console(stderr=True)

DataDir = Annotated[
    Path, typer.Option(envvar="PINPOINT_DATA_DIR", help="Where `pinpoint up` keeps its data")
]
DEFAULT_DATA_DIR = Path.home() / ".pinpoint"
SIGNING_KEY_FILE = "gateway-signing-key.pem"
RoleOption = Annotated[Role, typer.Option(help="The caller's role")]
AreaOption = Annotated[str, typer.Option(help="The area scope: TH, or a 2/4/6-digit code")]
TeamOption = Annotated[UUID | None, typer.Option("--team", help="The mentor team's id")]


def dev_signing_key(data_dir: Path) -> str:
    """The development gateway's EC P-256 key (PEM), made once per data folder and kept."""
    path = data_dir / SIGNING_KEY_FILE
    if path.exists():
        return path.read_text()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(pem)
    return pem


def dev_token(
    data_dir: Path,
    caller: Caller,
    *,
    ttl_minutes: int = 60,
    settings: GatewaySettings | None = None,
) -> str:
    """A token for this caller, signed with the data folder's gateway key."""
    settings = settings or GatewaySettings()
    return sign_token(
        load_signing_key(dev_signing_key(data_dir)),
        caller,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=ttl_minutes * 60,
    )


def token_command(
    role: RoleOption,
    area: AreaOption,
    team: TeamOption = None,
    subject: Annotated[str | None, typer.Option(help="The user id (default: role@area)")] = None,
    ttl_minutes: Annotated[int, typer.Option(min=1, help="Minutes until it expires")] = 60,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a bearer token the gateway of `pinpoint up` accepts (development)."""
    try:
        area_level(area)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--area") from exc
    caller = Caller(subject=subject or f"{role.value}@{area}", role=role, area=area, team_id=team)
    typer.echo(dev_token(data_dir.expanduser().resolve(), caller, ttl_minutes=ttl_minutes))


def oauth_client_command(
    client_id: Annotated[str, typer.Argument(help="The other system's client id")],
    role: RoleOption = Role.system,
    area: AreaOption = "TH",
    team: TeamOption = None,
) -> None:
    """Make a client secret for another system: print it (once) and its settings entry."""
    secret = new_secret()
    client = OAuthClient(
        client_id=client_id, secret_hash=hash_secret(secret), role=role, area=area, team_id=team
    )
    console.print("Give the client its secret (it is not kept anywhere):")
    typer.echo(secret)
    console.print("Add this entry to the gateway's PINPOINT_OAUTH_CLIENTS (a JSON list):")
    typer.echo(json.dumps(client.model_dump(mode="json", exclude_none=True)))


def register(app: typer.Typer) -> None:
    app.command("token")(token_command)
    app.command("oauth-client")(oauth_client_command)
