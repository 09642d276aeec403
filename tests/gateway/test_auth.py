"""Who gets in: bearer tokens of the gateway and of an OIDC issuer, client credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from pydantic import ValidationError

from services.gateway.passwords import hash_secret
from services.gateway.settings import DEV_SIGNING_KEY, GatewaySettings, OAuthClient
from services.gateway.tokens import load_signing_key
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.settings import DEV_INTERNAL_KEY
from tests.gateway.conftest import Gateway, GatewayFactory, token
from tests.registry.support import assert_problem, register

IDP = "http://idp.example"
SECRET = "a-long-client-secret-from-the-operators"


def assert_unauthenticated(response: httpx.Response, reason: str = "") -> None:
    problem = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    assert reason in problem["detail"], problem


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "pinpoint",
        "aud": "pinpoint-api",
        "sub": "someone",
        "role": "national_admin",
        "area": "TH",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade(algorithm: str, body: dict[str, Any], secret: bytes = b"") -> str:
    """A JWT built by hand, as an attacker would: `none`, or HMAC with any secret."""
    signing_input = f"{_b64(json.dumps({'alg': algorithm, 'typ': 'JWT'}).encode())}." + _b64(
        json.dumps(body).encode()
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{_b64(signature)}"


async def test_nothing_answers_without_a_token_but_health_metrics_and_docs(
    registry_gateway: Gateway,
) -> None:
    anonymous = registry_gateway.client()
    for path in ("/v1/households", "/v1/areas", "/v1/nowhere", "/internal/households/x"):
        assert_unauthenticated(await anonymous.get(path))
    for path in ("/healthz", "/metrics", "/docs", "/openapi.json"):
        assert (await anonymous.get(path)).status_code == 200, path
    docs = await anonymous.get("/docs")
    assert "/openapi.json" in docs.text
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    document = (await anonymous.get("/openapi.json")).json()
    assert "/v1/oauth/token" in document["paths"]


async def test_a_valid_token_gets_in_and_an_unknown_path_is_a_problem(
    registry_gateway: Gateway,
) -> None:
    officer = registry_gateway.as_(Role.province_officer, "24")
    assert (await officer.get("/v1/areas/24")).json()["code"] == "24"
    assert_problem(await officer.get("/v1/nowhere"), 404, "not-found")
    assert_problem(await officer.get("/internal/households/x"), 404, "not-found")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer not-a-jwt", "not a JWT"),
        (f"Bearer {token(Role.analyst, '24', ttl_seconds=-120)}", "expired"),
        (f"Bearer {token(Role.analyst, '24', audience='another-api')}", "not meant for this API"),
        (f"Bearer {token(Role.analyst, '24', issuer='https://elsewhere')}", "issuer"),
        (f"Bearer {handmade('HS256', claims(role='superuser'), b'x')}", ""),
    ],
    ids=["basic", "empty", "malformed", "expired", "wrong-audience", "wrong-issuer", "hs256"],
)
async def test_bad_tokens_are_refused(
    registry_gateway: Gateway, authorization: str, reason: str
) -> None:
    client = registry_gateway.client({"Authorization": authorization})
    assert_unauthenticated(await client.get("/v1/areas"), reason)


async def test_forged_unsigned_and_confused_tokens_are_refused(registry_gateway: Gateway) -> None:
    public_pem = (
        load_signing_key(DEV_SIGNING_KEY)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    forged = {
        "another key": jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "alg none": handmade("none", claims()),
        # The gateway's public key as an HMAC secret: the classic algorithm confusion.
        "public key as HMAC secret": handmade("HS256", claims(), public_pem),
        "unknown role": jwt.encode(
            claims(role="superuser"), load_signing_key(DEV_SIGNING_KEY), "ES256"
        ),
        "area that is no area": jwt.encode(
            claims(area="99x"), load_signing_key(DEV_SIGNING_KEY), "ES256"
        ),
        "no subject": jwt.encode(
            {k: v for k, v in claims().items() if k != "sub"},
            load_signing_key(DEV_SIGNING_KEY),
            "ES256",
        ),
    }
    for what, bad in forged.items():
        client = registry_gateway.client({"Authorization": f"Bearer {bad}"})
        response = await client.get("/v1/areas")
        assert response.status_code == 401, what
        assert_unauthenticated(response)


async def test_a_forged_identity_header_is_never_passed_on(
    registry_gateway: Gateway, admin: httpx.AsyncClient
) -> None:
    household = await register(admin, "240101")
    admin_identity = mint_internal_token(
        Caller(subject="forger", role=Role.national_admin, area="TH"), DEV_INTERNAL_KEY
    )
    analyst = registry_gateway.as_(Role.analyst, "24")
    forged = await analyst.get(
        f"/v1/households/{household['id']}", headers={IDENTITY_HEADER: admin_identity}
    )
    assert_problem(forged, 403, "not-permitted")
    anonymous = registry_gateway.client({IDENTITY_HEADER: admin_identity})
    assert_unauthenticated(await anonymous.get(f"/v1/households/{household['id']}"))


def identity_provider(keys: list[dict[str, Any]]) -> tuple[FastAPI, list[str]]:
    """A tiny OIDC issuer: its discovery document and its JWKS; notes each fetch."""
    idp = FastAPI()
    fetched: list[str] = []

    @idp.get("/.well-known/openid-configuration")
    async def discovery(request: Request) -> dict[str, Any]:
        fetched.append(request.url.path)
        return {"issuer": IDP, "jwks_uri": f"{IDP}/keys"}

    @idp.get("/keys")
    async def jwks(request: Request) -> dict[str, Any]:
        fetched.append(request.url.path)
        return {"keys": keys}

    return idp, fetched


async def test_tokens_of_the_oidc_issuer_are_checked_against_its_jwks(
    make_gateway: GatewayFactory, registry_app: FastAPI
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1"},
    ]
    idp, fetched = identity_provider(keys)
    gateway = await make_gateway(
        {
            "registry": httpx.ASGITransport(app=registry_app),
            "oidc": httpx.ASGITransport(app=idp),
        },
        oidc_issuer=IDP,
        oidc_audience="pinpoint-web",
    )
    person = claims(
        iss=IDP, aud="pinpoint-web", sub="somchai", role="district_officer", area="2401"
    )

    def sent(bearer: str) -> httpx.AsyncClient:
        return gateway.client({"Authorization": f"Bearer {bearer}"})

    rs256 = jwt.encode(person, rsa_key, "RS256", headers={"kid": "r1"})
    es256 = jwt.encode(person, ec_key, "ES256", headers={"kid": "e1"})
    for good in (rs256, es256):
        response = await sent(good).get("/v1/areas/2401")
        assert response.status_code == 200, response.text
    assert fetched == ["/.well-known/openid-configuration", "/keys"]  # fetched once, cached

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "unknown key id": jwt.encode(person, stranger, "RS256", headers={"kid": "r9"}),
        "known key id, other key": jwt.encode(person, stranger, "RS256", headers={"kid": "r1"}),
        "the gateway's audience": jwt.encode(
            {**person, "aud": "pinpoint-api"}, rsa_key, "RS256", headers={"kid": "r1"}
        ),
        "expired": jwt.encode(
            {**person, "exp": int(time.time()) - 300}, rsa_key, "RS256", headers={"kid": "r1"}
        ),
        # An EC signature offered under the RSA key's id: refused, not a server error.
        "RSA key id, ES256 signature": jwt.encode(person, ec_key, "ES256", headers={"kid": "r1"}),
        "EC key id, RS256 signature": jwt.encode(person, rsa_key, "RS256", headers={"kid": "e1"}),
    }
    for what, bad in refused.items():
        assert (await sent(bad).get("/v1/areas")).status_code == 401, what


def clients_setting() -> list[OAuthClient]:
    return [
        OAuthClient(
            client_id="dopa-welfare-sync",
            secret_hash=hash_secret(SECRET),
            role=Role.system,
            area="24",
        )
    ]


async def test_client_credentials_give_a_token_the_gateway_accepts(
    make_gateway: GatewayFactory, registry_app: FastAPI
) -> None:
    gateway = await make_gateway(
        {"registry": httpx.ASGITransport(app=registry_app)}, oauth_clients=clients_setting()
    )
    anonymous = gateway.client()
    by_form = await anonymous.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "dopa-welfare-sync",
            "client_secret": SECRET,
        },
    )
    assert by_form.status_code == 200, by_form.text
    assert by_form.headers["cache-control"] == "no-store"
    body = by_form.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    by_basic = await anonymous.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("dopa-welfare-sync", SECRET),
    )
    assert by_basic.status_code == 200, by_basic.text

    for answer in (by_form, by_basic):
        system = gateway.client({"Authorization": f"Bearer {answer.json()['access_token']}"})
        created = await system.post(
            "/v1/households",
            json={"area_code": "240101", "address": "1 หมู่ 1", "failed_indicators": ["2560-20"]},
        )
        assert created.status_code == 201, created.text
        outside = await system.post(
            "/v1/households",
            json={"area_code": "100101", "address": "1 หมู่ 1", "failed_indicators": ["2560-20"]},
        )
        assert_problem(outside, 403)  # the client's area scope came with its token


@pytest.mark.parametrize(
    ("form", "basic", "status", "error"),
    [
        ({"client_id": "dopa-welfare-sync", "client_secret": "wrong"}, None, 401, "invalid_client"),
        ({"client_id": "nobody", "client_secret": SECRET}, None, 401, "invalid_client"),
        ({}, ("dopa-welfare-sync", "wrong"), 401, "invalid_client"),
        ({"client_id": "dopa-welfare-sync"}, None, 401, "invalid_client"),
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            None,
            400,
            "unsupported_grant_type",
        ),
        ({"grant_type": None}, None, 400, "invalid_request"),
    ],
    ids=[
        "wrong-secret",
        "unknown-client",
        "wrong-basic",
        "no-secret",
        "password-grant",
        "no-grant",
    ],
)
async def test_bad_client_credentials_get_an_oauth_error(
    make_gateway: GatewayFactory,
    form: dict[str, str | None],
    basic: tuple[str, str] | None,
    status: int,
    error: str,
) -> None:
    gateway = await make_gateway({}, oauth_clients=clients_setting())
    data = {k: v for k, v in {"grant_type": "client_credentials", **form}.items() if v is not None}
    response = await gateway.client().post("/v1/oauth/token", data=data, auth=basic)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if basic:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_production_refuses_the_development_signing_key() -> None:
    with pytest.raises(ValidationError, match="PINPOINT_SIGNING_KEY"):
        GatewaySettings(environment="production", internal_key="k" * 48)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert GatewaySettings(environment="production", internal_key="k" * 48, signing_key=pem)
