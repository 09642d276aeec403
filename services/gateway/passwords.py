"""Client secrets, stored only as salted scrypt hashes and compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
# 16 MiB and about 60 ms of one core per check: slow enough to guess, cheap once per token.
_N, _R, _P = 2**14, 8, 1
_LENGTH = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, dklen=_LENGTH, maxmem=256 * n * r
    )


def new_secret() -> str:
    """A fresh client secret to hand to another system's operators (once)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """`scrypt$N$r$p$salt$hash`: what settings keep instead of the secret."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _N, _R, _P)
    return f"{SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> None:
    """ValueError unless `stored` is a hash `hash_secret` could have written."""
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != SCHEME or len(_unb64(digest)) != _LENGTH or not _unb64(salt):
        raise ValueError("not a scrypt hash of pinpoint's format")
    if min(int(n), int(r), int(p)) < 1:
        raise ValueError("scrypt parameters must be positive")


def secret_matches(secret: str, stored: str) -> bool:
    """Whether the secret is the one hashed (in constant time for a secret of any content)."""
    _, n, r, p, salt, digest = stored.split("$")
    computed = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    return hmac.compare_digest(computed, _unb64(digest))
