"""Bearer tokens: the gateway's own (client credentials, development) and the OIDC issuer's.

A token names its issuer; the gateway verifies it with that issuer's keys only, and only with
the algorithms that issuer uses, so `alg: none` or an HMAC token signed with a public key
never verifies. Claims that matter: `sub`, `role`, `area`, `team_id`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import uuid4

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import ValidationError

from services.gateway.settings import GatewaySettings
from shared.auth import Caller
from shared.thai import area_level

OWN_ALGORITHM = "ES256"
OIDC_ALGORITHMS = ["RS256", "ES256"]
# A client sends the same token for its whole life: a verdict is kept until the token expires,
# for this many tokens (a third of a millisecond of CPU saved on every request).
VERIFIED_TOKENS = 10_000
# A token with an unknown key ID makes the gateway fetch the issuer's keys again (the issuer
# may have rotated them), but not more often than this.
JWKS_REFETCH_SECONDS = 10.0

logger = logging.getLogger(__name__)


class TokenRejected(Exception):
    """The token does not prove who is calling; the message says why (for the 401)."""


class KeysUnavailable(Exception):
    """The OIDC issuer's keys could not be fetched, so no token of it can be checked now."""


def load_signing_key(pem: str) -> EllipticCurvePrivateKey:
    """The gateway's EC P-256 private key from PEM (ValueError for anything else)."""
    key = load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the signing key must be an EC P-256 private key")
    return key


def sign_token(
    key: EllipticCurvePrivateKey,
    caller: Caller,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    **extra: str,
) -> str:
    """An access token for this caller, signed with the gateway's key (ES256)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid4()),
        "sub": caller.subject,
        "role": caller.role.value,
        "area": caller.area,
        **extra,
    }
    if caller.team_id is not None:
        claims["team_id"] = str(caller.team_id)
    return jwt.encode(claims, key, algorithm=OWN_ALGORITHM)


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    """The caller a verified token names; TokenRejected if its role or area is not one we know."""
    try:
        caller = Caller(
            subject=claims["sub"],
            role=claims["role"],
            area=claims["area"],
            team_id=claims.get("team_id"),
        )
        area_level(caller.area)
    except (KeyError, ValidationError, ValueError) as exc:
        raise TokenRejected("the token carries no valid role, area or team") from exc
    return caller


class IssuerKeys:
    """The OIDC issuer's signing keys, from its discovery document's `jwks_uri`, cached."""

    def __init__(self, issuer: str, client: httpx.AsyncClient, cache_seconds: float) -> None:
        self.issuer = issuer.rstrip("/")
        self.client = client
        self.cache_seconds = cache_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with this ID (the only key, if the token names none).

        Keys are fetched again once cached too long, or for a key ID not seen yet (the issuer
        may have rotated its keys), at most every JWKS_REFETCH_SECONDS. While the issuer is
        away, the keys already fetched keep working.
        """
        now = time.monotonic()
        found = self._find(kid)
        wanted = found is None or now - self._fetched_at > self.cache_seconds
        if wanted and now - self._attempted_at > JWKS_REFETCH_SECONDS:
            async with self._lock:
                if self._attempted_at < now:  # nobody tried while this request waited
                    self._attempted_at = time.monotonic()
                    try:
                        await self._fetch()
                    except KeysUnavailable:
                        if found is None:
                            raise
                        logger.warning("keeping the cached keys of %s", self.issuer)
            found = self._find(kid)
        if found is None:
            if not self._keys:
                raise KeysUnavailable(f"no keys of {self.issuer} could be fetched yet")
            raise TokenRejected("the token is signed with a key its issuer does not publish")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            discovery = await self.client.get(f"{self.issuer}/.well-known/openid-configuration")
            discovery.raise_for_status()
            jwks = await self.client.get(discovery.json()["jwks_uri"])
            jwks.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(jwks.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"the keys of {self.issuer} could not be fetched") from exc
        self._keys = {k.key_id or "": k for k in key_set.keys}
        self._fetched_at = time.monotonic()


class TokenVerifier:
    """Turn a bearer token into the caller it proves, or say why it proves nothing."""

    def __init__(
        self,
        settings: GatewaySettings,
        own_key: EllipticCurvePublicKey,
        *,
        oidc_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.own_key = own_key
        self._verified: dict[str, tuple[Caller, float]] = {}  # token → (caller, expiry)
        self._client = httpx.AsyncClient(transport=oidc_transport, timeout=5.0)
        self.oidc_keys = (
            IssuerKeys(settings.oidc_issuer, self._client, settings.jwks_cache_seconds)
            if settings.oidc_issuer
            else None
        )

    async def caller(self, token: str) -> Caller:
        """The caller the token proves; TokenRejected (or KeysUnavailable) if it proves none."""
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        caller, expires = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (caller, expires)
        return caller

    async def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise TokenRejected("the token is not a JWT") from exc
        settings = self.settings
        key: Any
        if issuer == settings.issuer:
            key, algorithms, audience = self.own_key, [OWN_ALGORITHM], settings.audience
        elif self.oidc_keys is not None and issuer == settings.oidc_issuer:
            jwk = await self.oidc_keys.key(header.get("kid"))
            # Only the algorithm of the key the token names: a token that pairs an RSA key
            # with ES256 is refused, not fed to the wrong verifier.
            key, audience = jwk.key, settings.oidc_audience
            algorithms = [a for a in OIDC_ALGORITHMS if a == jwk.algorithm_name] or OIDC_ALGORITHMS
        else:
            raise TokenRejected("the token's issuer is not trusted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
                leeway=settings.token_leeway_seconds,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the token is not meant for this API") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the token is not valid: {exc}") from exc
        except (TypeError, ValueError) as exc:  # a key of one kind offered to another's verifier
            raise TokenRejected("the token does not match its key") from exc
        return caller_from_claims(claims), float(claims["exp"])

    async def aclose(self) -> None:
        await self._client.aclose()
