"""Bad tokens at every route of the public document: a 401 problem, and nothing forwarded.

tests/gateway/test_auth.py shows each kind of bad token refused at one route; this runs the
kinds of token an attacker would try against every operation the gateway documents (with a
valid body and real ids, so a request let through would do something), and proves that
no table of the registry or the logbook changed.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from services.gateway.openapi import public_openapi
from services.gateway.settings import DEV_SIGNING_KEY
from services.gateway.tokens import load_signing_key
from services.logbook.settings import LogbookSettings
from shared.auth import Role
from tests.gateway.conftest import GatewayFactory, token
from tests.gateway.test_auth import claims, handmade
from tests.hostile.support import Ledger, assert_problem_4xx, diff
from tests.hostile.writes import WRITES, World, build_world
from tests.logbook.support import intervention
from tests.registry.imports_support import CSV, csv_text, finished, row

PUBLIC = {"/v1/oauth/token"}  # how a client gets a token: it needs none


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _with_claims(signed: str, **changes: Any) -> str:
    """A real token with its claims changed and its signature kept (a forged payload)."""
    header, payload, signature = signed.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join((header, _b64(json.dumps({**body, **changes}).encode()), signature))


def bad_tokens() -> dict[str, str]:
    """Tokens that must not get in, each the strongest of its kind (a national admin's)."""
    key = load_signing_key(DEV_SIGNING_KEY)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    analyst = token(Role.analyst, "2402")
    return {
        "expired an hour ago": token(Role.national_admin, "TH", ttl_seconds=-3600),
        "wrong audience": token(Role.national_admin, "TH", audience="dopa-linkage"),
        "wrong issuer": token(Role.national_admin, "TH", issuer="https://idp.elsewhere"),
        "not valid before tomorrow": jwt.encode(claims(nbf=now + 86_400), key, "ES256"),
        "signed by another key": jwt.encode(
            claims(), ec.generate_private_key(ec.SECP256R1()), "ES256"
        ),
        "alg none": handmade("none", claims()),
        "public key as HMAC secret": handmade("HS256", claims(), public_pem),
        "an analyst's token made national admin": _with_claims(
            analyst, role="national_admin", area="TH"
        ),
        "an analyst's token with another area": _with_claims(analyst, area="24"),
        "an expired token made fresh": _with_claims(
            token(Role.national_admin, "TH", ttl_seconds=-3600), exp=now + 3600
        ),
        "signature cut off": analyst.rsplit(".", 1)[0] + ".",
        "no expiry": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, key, "ES256"),
    }


def _operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in public_openapi()["paths"].items()
        for method in item
        if path not in PUBLIC
    ]


async def _valid_calls(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body for each write, by its method and path template."""
    bodies: dict[tuple[str, str], dict[str, Any]] = {}
    for write in WRITES:
        call = await write.prepare(world)
        template = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", call.path)
        bodies[(call.method, template)] = call.body
    return bodies


MEMBER = {"name": "สมศรี", "position": "พี่เลี้ยง", "subject": "mentor-somsri"}


async def _created(world: World, path: str, body: dict[str, Any] | None) -> str:
    """A record to name in a path (an import when there is no body)."""
    if body is None:
        answer = await world.admin.post(path, content=csv_text([row()]).encode(), headers=CSV)
        assert answer.status_code == 202, answer.text
        return str((await finished(world.admin, answer.json()["id"]))["id"])
    answer = await world.admin.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_every_route_refuses_every_bad_token(
    make_gateway: GatewayFactory,
    registry_app: FastAPI,
    logbook_app: FastAPI,
    analytics_app: FastAPI,
    logbook_settings: LogbookSettings,
    ledger: Ledger,
) -> None:
    # Rate limits high enough that every bad token meets the check of the token, not of the rate.
    gateway = await make_gateway(
        {
            name: httpx.ASGITransport(app=app)
            for name, app in (
                ("registry", registry_app),
                ("logbook", logbook_app),
                ("analytics", analytics_app),
            )
        },
        rate_limit_per_second=10_000.0,
        rate_limit_burst=10_000,
    )
    world = await build_world(gateway, logbook_settings)
    bodies = await _valid_calls(world)
    ids = {
        "household_id": world.household,
        "person_id": world.person,
        "organization_id": world.team,
        "team_id": world.team,
        "member_id": await _created(world, f"/v1/organizations/{world.team}/members", MEMBER),
        "import_id": await _created(world, "/v1/imports/households", None),
        "intervention_id": await _created(
            world, "/v1/interventions", intervention(world.household)
        ),
        "area_code": "24",
        "code": "24",
    }
    before = await ledger.settled()
    tokens = bad_tokens()
    clients = {w: gateway.client({"Authorization": f"Bearer {t}"}) for w, t in tokens.items()}
    for method, path in _operations():
        concrete = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        template = re.sub(r"\{\w+\}", "{id}", path)
        body = bodies.get((method, template))
        content = csv_text([row()]).encode() if path == "/v1/imports/households" else None
        for what, client in clients.items():
            answer = await client.request(
                method,
                concrete,
                json=body if content is None and method != "GET" else None,
                content=content,
                headers=CSV if content else None,
            )
            problem = assert_problem_4xx(answer, (what, method, path))
            assert answer.status_code == 401, (what, method, path, problem)
            assert answer.headers["www-authenticate"].startswith("Bearer"), what
    after = await ledger.now()
    assert after == before, diff(before, after)
    # The same paths with a good token do reach the records.
    admin = gateway.as_(Role.national_admin, "TH")
    for name in ("household_id", "person_id", "import_id", "intervention_id"):
        path = next(p for m, p in _operations() if m == "GET" and p.endswith("{" + name + "}"))
        answer = await admin.get(path.replace("{" + name + "}", ids[name]))
        assert answer.status_code == 200, (path, answer.text)
