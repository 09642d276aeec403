"""The caller's identity inside pinpoint: a short-lived token the gateway signs for each request.

A service trusts nothing else. A request without a valid identity is refused, so a service
reached around the gateway gives nothing away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from shared.errors import NotPermitted, Unauthenticated
from shared.thai import COUNTRY, area_contains, area_level

IDENTITY_HEADER = "X-Pinpoint-Identity"
INTERNAL_AUDIENCE = "pinpoint-internal"
INTERNAL_ISSUER = "pinpoint-gateway"
_ALGORITHM = "HS256"


class Role(StrEnum):
    national_admin = "national_admin"
    province_officer = "province_officer"
    district_officer = "district_officer"
    subdistrict_team = "subdistrict_team"
    mentor = "mentor"
    analyst = "analyst"
    system = "system"


# Who may read personal data at all (an analyst sees aggregates only).
PERSONAL_DATA_ROLES = frozenset(Role) - {Role.analyst}
# Who sees citizen IDs unmasked: officers who act on them. Every such read is logged.
UNMASKED_ID_ROLES = frozenset(
    {Role.national_admin, Role.province_officer, Role.district_officer, Role.subdistrict_team}
)
# Who may manage records (households, organizations) inside their scope.
OFFICER_ROLES = frozenset(UNMASKED_ID_ROLES | {Role.system})
# Who may confirm that a household has graduated (DESIGN.md §1).
GRADUATION_ROLES = frozenset({Role.national_admin, Role.province_officer, Role.district_officer})


class Caller(BaseModel):
    """Who is asking: subject, role, area scope and (for mentors) team."""

    subject: str
    role: Role
    area: str
    team_id: UUID | None = None

    def sees(self, area_code: str) -> bool:
        """Whether an area lies inside this caller's scope."""
        return area_contains(self.area, area_code)

    def scope_prefix(self) -> str:
        """The area-code prefix of everything this caller may see ('' for the whole country)."""
        return "" if self.area == COUNTRY else self.area

    def listing_prefix(self, area_code: str | None) -> str | None:
        """The area-code prefix a list asked for `area_code` covers: the asked area if inside
        the scope, the scope if the asked area is wider, None if it lies beside the scope."""
        if area_code is None or area_code == COUNTRY:
            return self.scope_prefix()
        if self.sees(area_code):
            return area_code
        if area_contains(area_code, self.area):
            return self.scope_prefix()
        return None

    @property
    def sees_unmasked_ids(self) -> bool:
        return self.role in UNMASKED_ID_ROLES

    def require(self, roles: frozenset[Role], action: str) -> None:
        if self.role not in roles:
            raise NotPermitted(f"a {self.role.value} may not {action}")


def mint_internal_token(caller: Caller, key: str, *, ttl_seconds: int = 60) -> str:
    """Sign a caller's identity for one hop inside pinpoint (the gateway does this)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "sub": caller.subject,
        "role": caller.role.value,
        "area": caller.area,
    }
    if caller.team_id is not None:
        claims["team_id"] = str(caller.team_id)
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def read_internal_token(token: str, key: str) -> Caller:
    """Verify an internal token and return its caller; Unauthenticated if anything is off."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=INTERNAL_AUDIENCE,
            issuer=INTERNAL_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
        caller = Caller(
            subject=claims["sub"],
            role=claims["role"],
            area=claims["area"],
            team_id=claims.get("team_id"),
        )
        area_level(caller.area)
    except (jwt.PyJWTError, ValidationError, KeyError, ValueError) as exc:
        raise Unauthenticated("the internal identity token is not valid") from exc
    return caller


async def current_caller(request: Request) -> Caller:
    """The verified caller of this request."""
    token = request.headers.get(IDENTITY_HEADER)
    if not token:
        raise Unauthenticated("requests must come through the gateway")
    caller = read_internal_token(token, request.app.state.settings.internal_key.get_secret_value())
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


def requires(roles: frozenset[Role], action: str) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency that lets only these roles through (403 for the rest)."""

    async def dependency(caller: CallerDep) -> Caller:
        caller.require(roles, action)
        return caller

    return dependency
