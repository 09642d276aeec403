"""Citizen IDs at rest: encrypted with a random nonce, found again through a blind index."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag

from shared.pii import CitizenIdVault
from shared.settings import DEV_BLIND_INDEX_KEY, DEV_PII_KEY

CITIZEN_ID = "1234567890121"


def vault(key: bytes | None = None, index_key: str = DEV_BLIND_INDEX_KEY) -> CitizenIdVault:
    encoded = base64.b64encode(key).decode() if key is not None else DEV_PII_KEY
    return CitizenIdVault(encoded, index_key)


def test_an_encrypted_citizen_id_decrypts_to_itself() -> None:
    v = vault()
    blob = v.encrypt(CITIZEN_ID)
    assert CITIZEN_ID.encode() not in blob
    assert v.decrypt(blob) == CITIZEN_ID


def test_the_same_citizen_id_encrypts_differently_each_time() -> None:
    v = vault()
    blobs = {v.encrypt(CITIZEN_ID) for _ in range(20)}
    assert len(blobs) == 20
    assert len({blob[:12] for blob in blobs}) == 20  # a fresh nonce each time
    assert {v.decrypt(blob) for blob in blobs} == {CITIZEN_ID}


def test_another_key_cannot_decrypt() -> None:
    blob = vault().encrypt(CITIZEN_ID)
    with pytest.raises(InvalidTag):
        vault(os.urandom(32)).decrypt(blob)


def test_a_tampered_ciphertext_is_refused() -> None:
    v = vault()
    blob = bytearray(v.encrypt(CITIZEN_ID))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        v.decrypt(bytes(blob))


def test_the_blind_index_is_deterministic() -> None:
    assert vault().blind_index(CITIZEN_ID) == vault(os.urandom(32)).blind_index(CITIZEN_ID)
    assert len(vault().blind_index(CITIZEN_ID)) == 32


def test_the_blind_index_is_hmac_sha256_of_the_digits_whatever_came_before() -> None:
    # Indexes already stored must keep matching: the same function of key and digits, and one
    # vault's earlier indexes do not leak into its next.
    one = vault()
    for digits in (CITIZEN_ID, "1101700207030", CITIZEN_ID):
        expected = hmac.digest(DEV_BLIND_INDEX_KEY.encode(), digits.encode(), hashlib.sha256)
        assert one.blind_index(digits) == expected


def test_the_blind_index_tells_citizen_ids_apart() -> None:
    assert vault().blind_index(CITIZEN_ID) != vault().blind_index("1101700207030")


def test_the_blind_index_depends_on_its_key() -> None:
    other = vault(index_key="another-blind-index-key-0000000000000000")
    assert vault().blind_index(CITIZEN_ID) != other.blind_index(CITIZEN_ID)


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_a_key_that_is_not_32_bytes_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        vault(os.urandom(size))


def test_a_key_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError):
        CitizenIdVault("not base64 at all!", DEV_BLIND_INDEX_KEY)
