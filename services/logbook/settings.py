"""The logbook's settings."""

from __future__ import annotations

from shared.settings import ServiceSettings


class LogbookSettings(ServiceSettings):
    service_name: str = "logbook"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/logbook"
    registry_url: str = "http://127.0.0.1:8101"
    registry_timeout_seconds: float = 3.0
    # When the next visit is due if the mentor picks no date: sooner while problems are open.
    follow_up_days_with_problems: int = 30
    follow_up_days_without_problems: int = 90
    # A history import body is streamed, never held: the limit is the largest file we accept
    # (ten million entries are about 2 GB).
    max_import_bytes: int = 16 * 1024**3
