"""Free text every service accepts: anything PostgreSQL can store, so never U+0000."""

from __future__ import annotations

from pydantic import AfterValidator


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000: refuse it as a field error, not a 500 later.
    if "\x00" in value:
        raise ValueError("text cannot contain the NUL character")
    return value


NoNul = AfterValidator(_no_nul)
