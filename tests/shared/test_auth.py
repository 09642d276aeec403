"""The internal identity the gateway signs: a service trusts it only when everything checks."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import jwt
import pytest

from shared.auth import (
    INTERNAL_AUDIENCE,
    INTERNAL_ISSUER,
    Caller,
    Role,
    mint_internal_token,
    read_internal_token,
)
from shared.errors import NotPermitted, Unauthenticated

KEY = "a-test-internal-key-long-enough-for-hs512-" + "0" * 22
OTHER_KEY = "another-internal-key-long-enough-for-hs512-" + "0" * 21


def claims(**changes: Any) -> dict[str, Any]:
    """The claims the gateway would sign, with some changed (None removes one)."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "sub": "officer@2401",
        "role": "district_officer",
        "area": "2401",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def signed(key: str | None = KEY, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm)


def test_a_minted_identity_reads_back_as_the_same_caller() -> None:
    caller = Caller(subject="mentor-7", role=Role.mentor, area="240101", team_id=uuid4())
    assert read_internal_token(mint_internal_token(caller, KEY), KEY) == caller


def test_an_identity_without_a_team_reads_back_without_one() -> None:
    caller = Caller(subject="admin", role=Role.national_admin, area="TH")
    assert read_internal_token(mint_internal_token(caller, KEY), KEY) == caller


def test_the_hand_built_claims_are_what_the_gateway_signs() -> None:
    caller = read_internal_token(signed(), KEY)
    assert caller == Caller(subject="officer@2401", role=Role.district_officer, area="2401")


def test_an_expired_identity_is_refused() -> None:
    caller = Caller(subject="admin", role=Role.national_admin, area="TH")
    with pytest.raises(Unauthenticated):
        read_internal_token(mint_internal_token(caller, KEY, ttl_seconds=-1), KEY)


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("wrong key", lambda: signed(key=OTHER_KEY)),
        ("another algorithm", lambda: signed(algorithm="HS512")),
        ("unsigned", lambda: signed(key=None, algorithm="none")),
        ("wrong audience", lambda: signed(aud="someone-else")),
        ("wrong issuer", lambda: signed(iss="someone-else")),
        ("no expiry", lambda: signed(exp=None)),
        ("no issued-at", lambda: signed(iat=None)),
        ("no subject", lambda: signed(sub=None)),
        ("no audience", lambda: signed(aud=None)),
        ("no issuer", lambda: signed(iss=None)),
        ("no role", lambda: signed(role=None)),
        ("no area", lambda: signed(area=None)),
        ("unknown role", lambda: signed(role="superuser")),
        ("bad area", lambda: signed(area="240")),
        ("area not a code", lambda: signed(area="Chachoengsao")),
        ("bad team", lambda: signed(team_id="team-1")),
        ("not a token", lambda: "not.a.token"),
        ("empty", lambda: ""),
    ],
)
def test_a_bad_identity_is_unauthenticated(name: str, token: Any) -> None:
    with pytest.raises(Unauthenticated):
        read_internal_token(token(), KEY)


def test_a_caller_sees_only_its_own_area() -> None:
    district = Caller(subject="d", role=Role.district_officer, area="2401")
    assert district.sees("240101") and district.sees("2401")
    assert not district.sees("2402") and not district.sees("24")
    assert district.scope_prefix() == "2401"
    assert Caller(subject="n", role=Role.national_admin, area="TH").scope_prefix() == ""


def test_only_officers_see_citizen_ids_unmasked() -> None:
    unmasked = {
        role for role in Role if Caller(subject="x", role=role, area="TH").sees_unmasked_ids
    }
    assert unmasked == {
        Role.national_admin,
        Role.province_officer,
        Role.district_officer,
        Role.subdistrict_team,
    }


def test_a_role_outside_the_allowed_ones_is_not_permitted() -> None:
    analyst = Caller(subject="a", role=Role.analyst, area="TH")
    with pytest.raises(NotPermitted, match="analyst may not register households"):
        analyst.require(frozenset({Role.national_admin}), "register households")
