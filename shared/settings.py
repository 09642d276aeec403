"""Settings shared by every service: one base class, one subclass per service."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development placeholders: usable on a laptop, refused in production.
DEV_INTERNAL_KEY = "dev-internal-key-change-me-0000000000000000"
DEV_PII_KEY = "ZGV2LXBpaS1rZXktY2hhbmdlLW1lLTAwMDAwMDAwMDA="  # 32 bytes, base64
DEV_BLIND_INDEX_KEY = "dev-blind-index-key-change-me-000000000000"


class ServiceSettings(BaseSettings):
    """Configuration every service reads from `PINPOINT_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PINPOINT_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "pinpoint"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/pinpoint"
    database_pool_size: int = 10
    nats_url: str = "nats://127.0.0.1:4222"
    # How long one attempt to reach NATS may take (the relay retries; /readyz waits this long).
    nats_connect_timeout_seconds: float = 2.0
    # Servers of the NATS cluster that hold each stream (3 in production; 1 on a laptop).
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # Prefix for stream names and subjects, so tests and tenants can share one NATS server.
    events_namespace: str = ""
    internal_key: SecretStr = SecretStr(DEV_INTERNAL_KEY)
    internal_token_ttl_seconds: int = 60
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_json: bool = True
    relay_enabled: bool = True
    consumer_enabled: bool = True
    relay_batch_size: int = 500
    relay_idle_seconds: float = 0.5
    # Published outbox rows are kept this long (the streams keep the events for good).
    outbox_retention_hours: float = 72.0
    # OpenTelemetry's standard variables: traces are exported (OTLP over HTTP) only when an
    # endpoint is set; the exporter reads the rest of `OTEL_EXPORTER_OTLP_*` itself.
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> ServiceSettings:
        if self.environment == "production":
            for name, placeholder in self._placeholders().items():
                value = getattr(self, name)
                if isinstance(value, SecretStr) and value.get_secret_value() == placeholder:
                    raise ValueError(f"PINPOINT_{name.upper()} must be set in production")
        return self

    def _placeholders(self) -> dict[str, str]:
        return {"internal_key": DEV_INTERNAL_KEY}

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


class PiiSettings(ServiceSettings):
    """Settings of a service that stores citizen IDs."""

    pii_key: SecretStr = Field(default=SecretStr(DEV_PII_KEY), description="AES-256 key, base64")
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    def _placeholders(self) -> dict[str, str]:
        return {
            **super()._placeholders(),
            "pii_key": DEV_PII_KEY,
            "blind_index_key": DEV_BLIND_INDEX_KEY,
        }
