"""Idempotency-Key on POST: a replay answers like the first request and acts only once."""

from __future__ import annotations

from services.registry.settings import RegistrySettings
from tests.conftest import ClientFactory, registry_rows

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
