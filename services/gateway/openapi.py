"""The one public OpenAPI 3.1 document: the services' own documents merged, plus the gateway's.

Every path and schema comes from the services' FastAPI apps, so the document changes with the
code and cannot drift from it. The gateway adds only what it owns: authentication (bearer JWT,
OAuth 2.0 client credentials and the token route), rate limits, request IDs and body limits.
What clients never call (`/internal`, `/ops`, health, metrics) is left out.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, cast

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.logbook.app import create_app as logbook_app
from services.logbook.settings import LogbookSettings
from services.registry.app import create_app as registry_app
from services.registry.settings import RegistrySettings
from shared.auth import IDENTITY_HEADER
from shared.errors import PROBLEM_JSON
from shared.idempotency import KEY_PARAMETER, IdempotencyMiddleware

Document = dict[str, Any]

PUBLIC_PREFIX = "/v1/"
CLIENT_CREDENTIALS_PATH = "/v1/oauth/token"
SCHEMAS = "#/components/schemas/"
PROBLEM_REF = {"$ref": SCHEMAS + "Problem"}
GATEWAY = "gateway"

# The services' apps, each built from its settings' defaults alone: the document describes
# the code, so no environment (production secrets, or none at all) can change or break it.
# Building an app opens no connection; that happens in its lifespan, which never runs here.
SERVICES: dict[str, Callable[[], FastAPI]] = {
    "registry": lambda: registry_app(RegistrySettings.model_construct()),
    "logbook": lambda: logbook_app(LogbookSettings.model_construct()),
    "analytics": lambda: analytics_app(AnalyticsSettings.model_construct()),
}

# One tag per area of the API; a service tags its routes with the lower-case name.
TAGS: dict[str, str] = {
    "Authentication": "Tokens for other government systems (OAuth 2.0 client credentials).",
    "Areas": "Provinces, districts, sub-districts and villages by DOPA code, and the "
    "basic-minimum-needs indicators.",
    "Organizations": "Operation centres, agencies, sub-district teams and mentor teams, "
    "with their officers and volunteers.",
    "Households": "Target households: registration, status, members, mentor team and audit.",
    "Persons": "Household members; citizen IDs are masked unless the role needs them.",
    "Imports": "Bulk import of the target list as CSV, followed as a job.",
    "Logbook": "The solution catalogue, visits, mentor teams' worklists and each household's "
    "timeline.",
    "Interventions": "Help planned for or given to a household; corrected, never edited.",
    "Progress": "Target, reached and graduated households and THB delivered, by area.",
}

INFO = {
    "title": "pinpoint public API",
    "version": "1.0.0",
    "summary": "Targeted poverty eradication: households, mentor teams, logbook and progress.",
    "description": (
        "The REST API of pinpoint, the backend of Thailand's targeted poverty-eradication "
        "centres (ศจพ.).\n\n"
        "- **Authentication**: `Authorization: Bearer <JWT>` from the configured OIDC issuer; "
        f"other systems get a token from `POST {CLIENT_CREDENTIALS_PATH}`.\n"
        "- **Errors**: RFC 9457 `application/problem+json` with a stable `type`; validation "
        "errors list each field in `errors`.\n"
        "- **Lists**: cursor pagination: `limit` (at most 500) and `cursor`; the answer is "
        '`{"items": [...], "next_cursor": "..." | null}`.\n'
        "- **Writes**: `POST` accepts `Idempotency-Key` (a replay returns the first answer); "
        "`PATCH` and `PUT` take the `ETag` you read in `If-Match`.\n"
        "- Every response carries `X-Request-ID`; times are RFC 3339 with an offset; money is "
        "a decimal string of THB."
    ),
    "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
}

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user's token from the OIDC issuer (`pinpoint token` in development).",
    },
    "oauth2": {
        "type": "oauth2",
        "description": "Client credentials for other government systems.",
        "flows": {"clientCredentials": {"tokenUrl": CLIENT_CREDENTIALS_PATH, "scopes": {}}},
    },
}

PARAMETERS = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Any unique string (a UUID); replaying it within 24 hours returns the "
        "first answer instead of acting twice.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        "example": "0f8fad5b-d9cb-469f-a165-70867728950e",
    }
}


HEADERS = {
    "X-Request-ID": {
        "description": "The request's ID (the caller's own if it sent a sane one); quote it "
        "when reporting a problem.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "The version of the record; send it back in `If-Match` to change it.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    },
}

# What the gateway itself may answer on any forwarded route, before or instead of a service.
GATEWAY_ERRORS = {
    "401": "Not authenticated",
    "429": "Too many requests: the caller's rate limit is used up (see Retry-After)",
    "503": "A service this needs is not answering",
}
BODY_TOO_LARGE = "Request body too large"
# FastAPI's answer to a JSON body that is not UTF-8 (invalid JSON in UTF-8 is a 422).
BODY_UNREADABLE = "Bad request: the body is not UTF-8 text"
IDEMPOTENCY_CONFLICT = (
    "Conflict: this Idempotency-Key was used for a different request, or the first request "
    "with it is still running"
)

# Other representations a `format` query parameter may ask for.
FORMAT_MEDIA_TYPES = {"csv": "text/csv"}


class TokenRequest(BaseModel):
    """An OAuth 2.0 client-credentials grant (RFC 6749 §4.4), sent as a form."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "client_credentials",
                    "client_id": "dopa-welfare-sync",
                    "client_secret": "s3cr3t-from-the-operators",
                }
            ]
        }
    )

    grant_type: Literal["client_credentials"]
    client_id: str
    client_secret: str


class TokenResponse(BaseModel):
    """An access token to send as `Authorization: Bearer <access_token>`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkb3BhIn0.c2ln",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds until the token expires")


class TokenError(BaseModel):
    """An RFC 6749 §5.2 error answer of the token route."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "invalid_client", "error_description": "unknown client or bad secret"}
            ]
        }
    )

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    ]
    error_description: str | None = None


@functools.cache
def public_openapi() -> Document:
    """The public OpenAPI document, built once per process (treat it as read-only)."""
    return merge_documents({name: _service_document(build()) for name, build in SERVICES.items()})


def merge_documents(services: Mapping[str, Document]) -> Document:
    """Merge the services' documents (by service name) and add what the gateway owns."""
    renamed = _resolve_schema_names(
        {GATEWAY: _gateway_document(), **{n: _local_names(n, d) for n, d in services.items()}}
    )
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for source, part in renamed.items():
        schemas.update(part.get("components", {}).get("schemas", {}))
        for path, item in part["paths"].items():
            for method, operation in item.items():
                if method in paths.get(path, {}):
                    raise ValueError(f"{method.upper()} {path} is served twice (again by {source})")
                public = operation if source == GATEWAY else _public_operation(operation)
                paths.setdefault(path, {})[method] = public
    _add_etags(paths)
    document: Document = {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"oauth2": []}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": {},
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    used = _closure(schemas, paths)
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(used)}
    document = copy.deepcopy(document)  # no two places share (and later mutate) one dict
    _answers_have_every_field(document)
    return document


def _service_document(app: FastAPI) -> Document:
    """A service's own document, cut to its public routes; `Idempotency-Key` on the POSTs
    whose answers its idempotency middleware keeps (not on streamed uploads, which keep the
    key themselves where they do, nor on reads, which run again)."""
    document = app.openapi()
    untouched: frozenset[str] = frozenset()
    for middleware in app.user_middleware:
        factory: object = middleware.cls  # typed as any factory: compare it as a value
        if factory is IdempotencyMiddleware:
            untouched = cast(frozenset[str], middleware.kwargs["unbuffered_paths"]) | cast(
                frozenset[str], middleware.kwargs["reads"]
            )
    paths = {}
    for path, item in document["paths"].items():
        if path.startswith(PUBLIC_PREFIX):
            if "post" in item and path not in untouched:
                item["post"].setdefault("parameters", []).append(KEY_PARAMETER)
                item["post"]["responses"].setdefault("409", {"description": IDEMPOTENCY_CONFLICT})
            paths[path] = item
    return {**document, "paths": paths}


def _gateway_document() -> Document:
    """The gateway's own route and schemas, in the shape of a service's document.

    Its problem answers use the services' `Problem` (the shared one, rendered by FastAPI).
    """
    models: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
        (TokenRequest, "validation"),
        (TokenResponse, "serialization"),
        (TokenError, "serialization"),
    )
    schemas = {model.__name__: model.model_json_schema(mode=mode) for model, mode in models}
    token_error = {"application/json": {"schema": {"$ref": SCHEMAS + "TokenError"}}}
    operation = {
        "tags": ["Authentication"],
        "summary": "Issue Token",
        "description": "Exchange a client's ID and secret for an access token (OAuth 2.0 "
        "client-credentials grant, RFC 6749 §4.4). The client's role and area scope come "
        "with its configuration.",
        "operationId": "issueToken",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"$ref": SCHEMAS + "TokenRequest"}}
            },
        },
        "responses": {
            "200": {
                "description": "The access token",
                "headers": {
                    "Cache-Control": {
                        "description": "Always `no-store` (RFC 6749 §5.1)",
                        "schema": {"type": "string", "enum": ["no-store"]},
                    },
                    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
                },
                "content": {"application/json": {"schema": {"$ref": SCHEMAS + "TokenResponse"}}},
            },
            "400": {
                "description": "A malformed request or an unsupported grant type (RFC 6749 §5.2)",
                "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                "content": token_error,
            },
            "401": {
                "description": "Unknown client or wrong secret (`invalid_client`)",
                "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                "content": token_error,
            },
            "413": _problem(BODY_TOO_LARGE),
            "429": _problem(GATEWAY_ERRORS["429"]),
        },
    }
    return {
        "paths": {CLIENT_CREDENTIALS_PATH: {"post": operation}},
        "components": {"schemas": schemas},
    }


def _local_names(service: str, document: Document) -> Document:
    """Undo FastAPI's own clash names inside one service's document.

    When two models of one app share a class name FastAPI names them by module
    (`shared__errors__Problem`, `services__logbook__schemas__Problem`), and it may leave one's
    input form as `Problem-Input`. Shared models keep their plain name (they are the same in
    every service); a service's model becomes `<Service><Name>`; a copy identical to another
    schema of the same base name is folded into it.
    """
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for name in schemas:
        module, _, base = name.rpartition("__")
        if module:
            plain = base if module.startswith("shared__") else service.capitalize() + base
            renames[name] = plain
    target_of = {renames.get(n, n): n for n in schemas}
    if len(target_of) != len(schemas):
        raise ValueError(f"{service}: FastAPI's schema names do not map to distinct names")
    for name, schema in schemas.items():
        stem = name.removesuffix("-Input").removesuffix("-Output")
        if stem == name:
            continue
        for other, other_schema in schemas.items():
            if other != name and other_schema == schema and _base(other) == _base(stem):
                renames[name] = renames.get(other, other)
                break
    return _rename(document, renames)


def _base(name: str) -> str:
    return name.rpartition("__")[2]


def _resolve_schema_names(sources: dict[str, Document]) -> dict[str, Document]:
    """Give every schema one name in the merged document, clobbering none.

    A name used by several sources for identical schemas stays one schema. Where they differ,
    each service's version gets the service's name as a prefix (the gateway's keeps its name)
    and the service's `$ref`s follow; renaming changes `$ref`s inside other schemas, so this
    repeats until no name is claimed by two different schemas.
    """
    while True:
        claims: dict[str, dict[str, Any]] = {}
        for source, document in sources.items():
            for name, schema in document.get("components", {}).get("schemas", {}).items():
                claims.setdefault(name, {})[source] = schema
        renames: dict[str, dict[str, str]] = {}
        for name, by_source in claims.items():
            variants = list(by_source.values())
            if all(v == variants[0] for v in variants):
                continue
            keeper = by_source.get(GATEWAY)
            for source, schema in by_source.items():
                if source != GATEWAY and schema != keeper:
                    prefixed = source.capitalize() + name
                    if prefixed in claims:
                        raise ValueError(f"{source}: cannot rename {name} to taken {prefixed}")
                    renames.setdefault(source, {})[name] = prefixed
        if not renames:
            return sources
        sources = {s: _rename(d, renames.get(s, {})) for s, d in sources.items()}


def _rename(document: Document, renames: Mapping[str, str]) -> Document:
    """The document with these schemas renamed and every `$ref` to them rewritten."""
    if not renames:
        return document
    refs = {SCHEMAS + old: SCHEMAS + new for old, new in renames.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"] in refs:
                return {**node, "$ref": refs[node["$ref"]]}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    renamed: Document = walk(document)
    components = renamed.get("components", {})
    if "schemas" in components:
        components["schemas"] = {renames.get(k, k): v for k, v in components["schemas"].items()}
    return renamed


def _public_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """A service's operation as clients see it through the gateway."""
    operation = dict(operation)
    hidden = {IDENTITY_HEADER.lower(), "if-match"}
    declared = operation.get("parameters", [])
    parameters = [p for p in declared if not (_header(p) and p["name"].lower() in hidden)]
    responses: dict[str, Any] = dict(operation["responses"])
    if any(_header(p) and p["name"].lower() == "if-match" for p in declared):
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                # A service that answers 428 without it needs it; others only check it if sent.
                "required": "428" in responses,
                "description": "The `ETag` you last read; a stale one is refused with 412.",
                "schema": {"type": "string"},
                "example": '"3"',
            }
        )
    operation["parameters"] = parameters
    operation["tags"] = _public_tags(operation.get("tags", []))

    for status, text in GATEWAY_ERRORS.items():
        responses.setdefault(status, {"description": text})
    if "requestBody" in operation:
        responses.setdefault("413", {"description": BODY_TOO_LARGE})
        if "application/json" in operation["requestBody"].get("content", {}):
            responses.setdefault("400", {"description": BODY_UNREADABLE})
    formats = _formats(parameters)
    for status, response in responses.items():
        response = dict(response)
        if status[0] in "45":
            response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        elif status[0] == "2" and "content" in response:
            response["content"] = _typed_content(response["content"], formats)
        response["headers"] = {
            **response.get("headers", {}),
            "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
        }
        if status == "429":
            response["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        responses[status] = response
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _header(parameter: dict[str, Any]) -> bool:
    return parameter.get("in") == "header"


def _public_tags(tags: list[str]) -> list[str]:
    """The service's tags as the document's tags (an unknown one stays, for tests to see)."""
    by_key = {name.lower(): name for name in TAGS}
    return list(dict.fromkeys(by_key.get(tag.lower(), tag) for tag in tags))


def _formats(parameters: list[dict[str, Any]]) -> list[str]:
    """The media types a `format` query parameter may ask for besides JSON."""
    for p in parameters:
        if p.get("in") == "query" and p.get("name") == "format":
            return [FORMAT_MEDIA_TYPES[f] for f in p["schema"]["enum"] if f in FORMAT_MEDIA_TYPES]
    return []


def _typed_content(content: dict[str, Any], formats: list[str]) -> dict[str, Any]:
    """Success content with a schema for every media type (text, CSV and SVG are strings)."""
    typed = {
        media: media_type
        if "schema" in media_type
        else {**media_type, "schema": {"type": "string"}}
        for media, media_type in content.items()
    }
    for media in formats:
        typed.setdefault(media, {"schema": {"type": "string"}})
    return typed


def _add_etags(paths: dict[str, dict[str, Any]]) -> None:
    """Note `ETag` on the successful reads and writes of records changed with `If-Match`."""
    for item in paths.values():
        versioned = any(
            p.get("name") == "If-Match"
            for operation in item.values()
            for p in operation.get("parameters", [])
        )
        if not versioned:
            continue
        for method in ("get", "patch", "put"):
            for status, response in item.get(method, {}).get("responses", {}).items():
                if status.startswith("2"):
                    response["headers"]["ETag"] = {"$ref": "#/components/headers/ETag"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


def _closure(schemas: Mapping[str, Any], node: Any) -> set[str]:
    """The schemas a part of the document refers to, directly or through other schemas."""
    seen: set[str] = set()
    pending = list(_schema_refs(node))
    while pending:
        name = pending.pop()
        if name not in seen:
            if name not in schemas:
                raise ValueError(f"the document refers to a schema it lacks: {name}")
            seen.add(name)
            pending.extend(_schema_refs(schemas[name]))
    return seen


def _answers_have_every_field(document: Document) -> None:
    """Mark the fields with a default (other than null) as required in answer-only schemas.

    FastAPI writes every field of an answer, so such a field is always there. Generators
    either take every default as "always there", which wrongly makes clients send defaulted
    request fields (openapi-typescript's default), or none, which makes them check answers
    for fields never missing: this lets clients generate without the former and avoid both.
    Null defaults stay optional: a problem document leaves its null fields out.
    """
    schemas = document["components"]["schemas"]
    sent = _closure(
        schemas,
        [
            [operation.get("requestBody"), operation.get("parameters")]
            for item in document["paths"].values()
            for operation in item.values()
        ],
    )
    for name in schemas.keys() - sent:
        schema = schemas[name]
        properties = schema.get("properties", {})
        defaulted = [k for k, v in properties.items() if v.get("default") is not None]
        if defaulted:
            schema["required"] = list(dict.fromkeys([*schema.get("required", []), *defaulted]))


def _schema_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMAS):
            yield ref.removeprefix(SCHEMAS)
        for value in node.values():
            yield from _schema_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_refs(item)
