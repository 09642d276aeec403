"""Citizen IDs at rest: AES-256-GCM ciphertext plus a keyed blind index for exact lookups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class CitizenIdVault:
    """Encrypts, decrypts and blind-indexes citizen IDs with keys from settings."""

    def __init__(self, encryption_key_b64: str, blind_index_key: str) -> None:
        key = base64.b64decode(encryption_key_b64)
        if len(key) != 32:
            raise ValueError("the PII key must be 32 bytes, base64-encoded")
        self._aead = AESGCM(key)
        # Keyed once: each index copies this state (about a third of a fresh `hmac.digest`'s
        # cost; the import makes millions).
        self._index = hmac.new(blind_index_key.encode(), digestmod=hashlib.sha256)

    def encrypt(self, digits: str) -> bytes:
        """A fresh random nonce, then the AES-GCM ciphertext and tag of the digits."""
        return self.encrypt_many([digits])[0]

    def encrypt_many(self, many: list[str]) -> list[bytes]:
        """`encrypt` of each, with the random nonces drawn in one system call (bulk imports)."""
        nonces = os.urandom(_NONCE_BYTES * len(many))
        encrypt = self._aead.encrypt
        out = []
        for at, digits in zip(range(0, len(nonces), _NONCE_BYTES), many, strict=True):
            nonce = nonces[at : at + _NONCE_BYTES]
            out.append(nonce + encrypt(nonce, digits.encode(), b"citizen_id"))
        return out

    def decrypt(self, blob: bytes) -> str:
        nonce, ciphertext = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, b"citizen_id").decode()

    def seal(self, data: bytes) -> bytes:
        """Other data that shows citizen IDs (an answer kept for a replay), sealed alike."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, b"sealed")

    def unseal(self, blob: bytes) -> bytes:
        nonce, ciphertext = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, b"sealed")

    def blind_index(self, digits: str) -> bytes:
        """A keyed hash: equal IDs give equal indexes, and the index alone reveals nothing."""
        index = self._index.copy()
        index.update(digits.encode())
        return index.digest()
