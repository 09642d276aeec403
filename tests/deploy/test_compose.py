"""deploy/compose.yaml: valid by the compose specification, and built the way the brief says."""

from __future__ import annotations

import base64
import json
import re
import secrets
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.gateway.settings import GatewaySettings
from services.registry.settings import RegistrySettings
from tests.deploy.support import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _env_example() -> dict[str, str]:
    """deploy/.env.example as compose reads it (double quotes expand \\n)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace("\\n", "\n")
        values[name.strip()] = value
    return values


def test_compose_file_follows_the_compose_specification() -> None:
    # The compose-spec project's schema, as check-jsonschema vendors it (no network in CI).
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator(schema).validate(_compose())


def test_only_the_gateway_publishes_ports() -> None:
    publishing = {name for name, service in _services().items() if service.get("ports")}
    assert publishing == {"gateway"}


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in _services().items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


def test_every_dependency_waits_on_a_condition() -> None:
    services = _services()
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, how in depends_on.items():
            condition = how.get("condition")
            one_shot = services[dependency].get("restart") == "no"
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert condition == expected, f"{name} → {dependency}: {condition}"


def test_the_migrations_run_once_before_every_service_with_a_database() -> None:
    services = _services()
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("registry", "logbook", "analytics"):
        assert services[name]["command"][:2] == ["serve", name]
        assert "migrate" in services[name]["depends_on"]


def test_nats_syncs_every_write_to_disk() -> None:
    config = (DEPLOY / "nats" / "nats.conf").read_text()
    assert re.search(r"^\s*sync_interval:\s*always\s*$", config, re.M)


def test_every_variable_the_compose_file_uses_is_in_the_env_example() -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert used <= set(_env_example()), used - set(_env_example())


def _real_keys() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "internal_key": secrets.token_urlsafe(48),
        "pii_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "blind_index_key": secrets.token_urlsafe(48),
        "signing_key": pem.decode(),
    }


@pytest.mark.parametrize(
    ("settings_class", "key"),
    [
        (RegistrySettings, "internal_key"),
        (RegistrySettings, "pii_key"),
        (RegistrySettings, "blind_index_key"),
        (GatewaySettings, "signing_key"),
    ],
)
def test_each_placeholder_key_in_the_env_example_is_refused_in_production(
    settings_class: type[Any], key: str
) -> None:
    real = _real_keys()
    settings_class(environment="production", **real)
    placeholder = _env_example()[f"PINPOINT_{key.upper()}"]
    with pytest.raises(ValueError, match=f"PINPOINT_{key.upper()} must be set in production"):
        settings_class(environment="production", **{**real, key: placeholder})
