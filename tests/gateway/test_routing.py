"""The gateway's route table against the services' own routes: it cannot drift from them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, compile_path

from services.analytics.app import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.gateway.app import create_app as create_gateway
from services.gateway.routing import FAMILIES, Family
from services.gateway.settings import GatewaySettings
from services.logbook.app import create_app as create_logbook
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings

PUBLIC = "/v1/"


def public_paths(app: FastAPI) -> set[str]:
    """Every public path template an app serves, by its OpenAPI document."""
    return {path for path in app.openapi()["paths"] if path.startswith(PUBLIC)}


@pytest.fixture(scope="module")
def served() -> dict[str, set[str]]:
    """Each service's public path templates (apps built, never started)."""
    return {
        "registry": public_paths(create_registry(RegistrySettings.model_construct())),
        "logbook": public_paths(create_logbook(LogbookSettings.model_construct())),
        "analytics": public_paths(create_analytics(AnalyticsSettings.model_construct())),
    }


def first_family(path: str) -> Family | None:
    for family in FAMILIES:
        regex, _, _ = compile_path(family.path)
        if regex.match(path):
            return family
    return None


def example(template: str) -> str:
    """A concrete path for a template: each parameter replaced by a plausible value."""
    return re.sub(r"\{[^}]+\}", "0193a6b2-7d1e-7f20-8c3a-4b5d6e7f8091", template)


def test_every_public_route_goes_to_the_service_that_serves_it(
    served: dict[str, set[str]],
) -> None:
    wrong = {
        path: (service, getattr(first_family(example(path)), "service", None))
        for service, paths in served.items()
        for path in paths
        if getattr(first_family(example(path)), "service", None) != service
    }
    assert not wrong, f"path: (served by, routed to) {wrong}"


def test_every_family_of_the_table_is_served(served: dict[str, set[str]]) -> None:
    used = {first_family(example(path)) for paths in served.values() for path in paths}
    assert set(FAMILIES) <= used, set(FAMILIES) - used


def route_paths(routes: Sequence[BaseRoute]) -> list[str]:
    """The path of every route, those of included routers too (FastAPI keeps an included
    router as one entry, without a path, around the router it was given)."""
    paths = []
    for route in routes:
        if isinstance(path := getattr(route, "path", None), str):
            paths.append(path)
        if (included := getattr(route, "original_router", None)) is not None:
            paths += route_paths(included.routes)
    return paths


def test_no_path_of_the_gateway_itself_falls_under_a_family() -> None:
    """The families come first in the gateway's route table: one that matched a probe, the
    metrics, the document or the token endpoint would send it to a service instead."""
    own = [
        path
        for path in route_paths(create_gateway(GatewaySettings()).router.routes)
        if path not in {family.path for family in FAMILIES}
    ]
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} <= set(own)
    assert "/v1/oauth/token" in own
    assert not {path: first_family(example(path)) for path in own if first_family(example(path))}
