"""The registry's settings."""

from __future__ import annotations

from shared.settings import PiiSettings


class RegistrySettings(PiiSettings):
    service_name: str = "registry"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/registry"
    # An import body is streamed, never held: the limit is the largest file we accept (the
    # whole survey of 36 million persons is about 7 GB).
    max_import_bytes: int = 16 * 1024**3
