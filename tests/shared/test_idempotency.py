"""Idempotency-Key on POST: a replay answers like the first request and acts only once."""

from __future__ import annotations

from services.registry.settings import RegistrySettings
from shared.db import create_engine, create_sessionmaker
from shared.idempotency import forget_expired
from shared.thai import format_citizen_id
from tests.conftest import ClientFactory, registry_rows
from tests.registry.support import citizen_id

HOUSEHOLD = {"area_code": "240101", "address": "12 หมู่ 3", "failed_indicators": ["2560-20"]}


async def _households(settings: RegistrySettings) -> int:
    (row,) = await registry_rows(settings, "SELECT count(*) FROM household")
    return int(row[0])


async def test_replaying_a_key_returns_the_first_answer_and_writes_once(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    client = as_caller("province_officer", "24")
    headers = {"Idempotency-Key": "register-0001"}
    first = await client.post("/v1/households", json=HOUSEHOLD, headers=headers)
    again = await client.post("/v1/households", json=HOUSEHOLD, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _households(registry_settings) == 1


async def test_a_key_reused_for_another_body_is_a_conflict(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    client = as_caller("province_officer", "24")
    headers = {"Idempotency-Key": "register-0002"}
    assert (await client.post("/v1/households", json=HOUSEHOLD, headers=headers)).status_code == 201
    other = await client.post(
        "/v1/households", json={**HOUSEHOLD, "address": "99"}, headers=headers
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert await _households(registry_settings) == 1


async def test_keys_belong_to_their_caller(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    headers = {"Idempotency-Key": "same-key"}
    one = await as_caller("province_officer", "24", subject="a").post(
        "/v1/households", json=HOUSEHOLD, headers=headers
    )
    two = await as_caller("province_officer", "24", subject="b").post(
        "/v1/households", json=HOUSEHOLD, headers=headers
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert await _households(registry_settings) == 2


async def test_a_refused_request_does_not_use_up_its_key(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    client = as_caller("province_officer", "24")
    headers = {"Idempotency-Key": "register-0003"}
    bad = await client.post(
        "/v1/households", json={**HOUSEHOLD, "area_code": "24019999"}, headers=headers
    )
    assert bad.status_code == 422
    good = await client.post("/v1/households", json=HOUSEHOLD, headers=headers)
    assert good.status_code == 201
    assert await _households(registry_settings) == 1


async def test_a_kept_answer_is_replayed_only_to_the_same_role_area_and_team(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    headers = {"Idempotency-Key": "register-0004"}
    body = {**HOUSEHOLD, "members": [{"first_name": "ก", "last_name": "ข"}]}
    first = await as_caller("province_officer", "24", subject="u1").post(
        "/v1/households", json=body, headers=headers
    )
    assert first.status_code == 201, first.text
    # The same subject in a role or scope it no longer has (or never had for this) gets no
    # copy of the first answer, which its own checks would have refused.
    for role, area in (("analyst", "24"), ("province_officer", "10"), ("mentor", "24")):
        other = await as_caller(role, area, subject="u1").post(
            "/v1/households", json=body, headers=headers
        )
        assert other.status_code == 409, (role, area, other.text)
        assert other.headers["content-type"] == "application/problem+json"
        assert "Idempotent-Replayed" not in other.headers
    again = await as_caller("province_officer", "24", subject="u1").post(
        "/v1/households", json=body, headers=headers
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await _households(registry_settings) == 1


async def test_a_kept_answer_holds_no_citizen_id_in_clear(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    client = as_caller("province_officer", "24")
    digits = citizen_id()
    headers = {"Idempotency-Key": "register-0005"}
    body = {**HOUSEHOLD, "members": [{"first_name": "ก", "last_name": "ข", "citizen_id": digits}]}
    first = await client.post("/v1/households", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["members"][0]["citizen_id"] == digits

    (kept,) = await registry_rows(
        registry_settings, "SELECT body FROM idempotency_key WHERE key = 'register-0005'"
    )
    assert kept["body"]  # an answer was kept, and nothing of it is readable
    for shown in (digits, format_citizen_id(digits), "ก", '"members"'):
        assert shown.encode() not in kept["body"]

    again = await client.post("/v1/households", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


async def test_a_lookup_sent_again_with_its_key_looks_again_and_is_logged_again(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    digits = citizen_id()
    officer = as_caller("province_officer", "24", subject="u2")
    created = await officer.post(
        "/v1/households",
        json={
            **HOUSEHOLD,
            "members": [{"first_name": "ก", "last_name": "ข", "citizen_id": digits}],
        },
    )
    assert created.status_code == 201, created.text
    await registry_rows(registry_settings, "DELETE FROM pii_access")
    lookup = {"citizen_id": digits, "reason": "checking welfare"}
    headers = {"Idempotency-Key": "lookup-0001"}

    first = await officer.post("/v1/persons/lookup", json=lookup, headers=headers)
    again = await officer.post("/v1/persons/lookup", json=lookup, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in again.headers
    # Each lookup is checked on its own: the same subject as an analyst is refused.
    analyst = as_caller("analyst", "24", subject="u2")
    refused = await analyst.post("/v1/persons/lookup", json=lookup, headers=headers)
    assert refused.status_code == 403

    logged = await registry_rows(
        registry_settings, "SELECT subject, action FROM pii_access ORDER BY id"
    )
    assert [(r["subject"], r["action"]) for r in logged] == [("u2", "lookup"), ("u2", "lookup")]
    kept = await registry_rows(
        registry_settings, "SELECT count(*) AS n FROM idempotency_key WHERE key = 'lookup-0001'"
    )
    assert kept[0]["n"] == 0


async def test_keys_older_than_a_day_are_forgotten_with_their_answers(
    as_caller: ClientFactory, registry_settings: RegistrySettings
) -> None:
    client = as_caller("province_officer", "24")
    for key in ("kept-0001", "old-0001"):
        answer = await client.post(
            "/v1/households", json=HOUSEHOLD, headers={"Idempotency-Key": key}
        )
        assert answer.status_code == 201, answer.text
    await registry_rows(
        registry_settings,
        "UPDATE idempotency_key SET created_at = now() - interval '25 hours'"
        " WHERE key = 'old-0001'",
    )
    engine = create_engine(registry_settings)
    try:
        assert await forget_expired(create_sessionmaker(engine)) == 1
    finally:
        await engine.dispose()
    left = await registry_rows(registry_settings, "SELECT key FROM idempotency_key")
    assert [r["key"] for r in left] == ["kept-0001"]
