"""The gateway's settings: where the services are, whom to trust, how much to let through."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field, SecretStr, field_validator

from services.gateway.passwords import check_hash_format
from shared.auth import Role
from shared.settings import ServiceSettings
from shared.thai import area_level

# The development signing key (EC P-256): usable on a laptop and in tests, refused in
# production. `pinpoint up` makes its own key per data folder instead.
DEV_SIGNING_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFcw7a1NM20yKYP+6
mC00RXXA3htJycnC6i2ZP/u8FlGhRANCAARsHHMzYIiACzb6v5LDJgwjZxqN0BbM
YrL2SuinC4KutVLcwyNxgae80js30KtMyd5ratalNz3RedWNP6IJDsD2
-----END PRIVATE KEY-----
"""


class OAuthClient(BaseModel):
    """Another system allowed the client-credentials grant, with the identity its tokens carry."""

    client_id: str
    # `pinpoint oauth-client` prints it; the secret itself is never stored.
    secret_hash: str
    role: Role
    area: str
    team_id: UUID | None = None

    @field_validator("area")
    @classmethod
    def _known_area_code(cls, value: str) -> str:
        area_level(value)
        return value

    @field_validator("secret_hash")
    @classmethod
    def _hashed(cls, value: str) -> str:
        try:
            check_hash_format(value)
        except ValueError as exc:  # also a wrong number of fields
            raise ValueError("give the hash `pinpoint oauth-client` prints") from exc
        return value


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    registry_url: str = "http://127.0.0.1:8101"
    logbook_url: str = "http://127.0.0.1:8102"
    analytics_url: str = "http://127.0.0.1:8103"

    # Pools to each service: connections kept open and how long an idle one is kept (under
    # uvicorn's 5 s keep-alive, so the gateway never reuses a connection the service is closing).
    upstream_max_connections: int = 100
    upstream_keepalive_seconds: float = 4.0
    upstream_connect_timeout_seconds: float = 2.0
    upstream_timeout_seconds: float = 30.0
    # The target-list upload streams gigabytes, then the registry stages them before answering.
    upload_timeout_seconds: float = 3600.0
    max_import_bytes: int = 16 * 1024**3

    # Tokens the gateway signs itself (client credentials and, in development, `pinpoint
    # token`): its EC P-256 key as PEM, and the issuer and audience they carry.
    signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)
    issuer: str = "pinpoint"
    audience: str = "pinpoint-api"
    access_token_ttl_seconds: int = 3600
    oauth_clients: list[OAuthClient] = Field(default_factory=list)

    # People's tokens from the OIDC issuer (its JWKS); none configured means none accepted.
    oidc_issuer: str | None = None
    oidc_audience: str = "pinpoint-api"
    jwks_cache_seconds: float = 300.0
    token_leeway_seconds: int = 30

    # Requests per second each client may make, and how many it may burst above that.
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)

    cors_origins: list[str] = Field(default_factory=list)
    hsts_max_age_seconds: int = 0

    def _placeholders(self) -> dict[str, str]:
        return {**super()._placeholders(), "signing_key": DEV_SIGNING_KEY}

    def service_urls(self) -> dict[str, str]:
        """Each service's base URL, by the name the route table uses."""
        return {
            "registry": self.registry_url,
            "logbook": self.logbook_url,
            "analytics": self.analytics_url,
        }
