"""The public OpenAPI document: complete, valid, and usable the way frontend teams use it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from services.gateway.openapi import merge_documents, public_openapi
from shared.auth import IDENTITY_HEADER
from shared.errors import PROBLEM_JSON

TOOLS = Path(__file__).parent / "openapi"
METHODS = {"get", "post", "put", "patch", "delete"}

# Every route of the contract (/work/shared/API.md), as the document names its parameters.
API_MD_ROUTES = [
    ("post", "/v1/oauth/token"),
    ("get", "/v1/areas"),
    ("get", "/v1/areas/{code}"),
    ("post", "/v1/areas"),
    ("get", "/v1/indicators"),
    ("post", "/v1/organizations"),
    ("get", "/v1/organizations"),
    ("get", "/v1/organizations/{organization_id}"),
    ("patch", "/v1/organizations/{organization_id}"),
    ("post", "/v1/organizations/{organization_id}/members"),
    ("get", "/v1/organizations/{organization_id}/members"),
    ("delete", "/v1/organizations/{organization_id}/members/{member_id}"),
    ("put", "/v1/households/{household_id}/mentor-team"),
    ("post", "/v1/households"),
    ("get", "/v1/households"),
    ("get", "/v1/households/{household_id}/audit"),
    ("get", "/v1/households/{household_id}"),
    ("patch", "/v1/households/{household_id}"),
    ("post", "/v1/households/{household_id}/status"),
    ("get", "/v1/households/{household_id}/status-history"),
    ("post", "/v1/households/{household_id}/members"),
    ("get", "/v1/households/{household_id}/members"),
    ("get", "/v1/persons/{person_id}"),
    ("patch", "/v1/persons/{person_id}"),
    ("post", "/v1/persons/lookup"),
    ("post", "/v1/imports/households"),
    ("get", "/v1/imports/{import_id}"),
    ("get", "/v1/menus"),
    ("post", "/v1/households/{household_id}/visits"),
    ("get", "/v1/households/{household_id}/visits"),
    ("post", "/v1/interventions"),
    ("get", "/v1/interventions"),
    ("get", "/v1/interventions/{intervention_id}"),
    ("post", "/v1/interventions/{intervention_id}/status"),
    ("post", "/v1/interventions/{intervention_id}/corrections"),
    ("get", "/v1/teams/{team_id}/worklist"),
    ("get", "/v1/households/{household_id}/logbook"),
    ("get", "/v1/progress/{area_code}"),
    ("get", "/v1/progress/{area_code}/children"),
    ("get", "/v1/progress/{area_code}/series"),
    ("get", "/v1/progress/{area_code}/chart.svg"),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return public_openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)
    assert document["servers"] == [{"url": "/"}]
    assert {"title", "version", "description"} <= document["info"].keys()


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in set(refs(document)):
        assert ref.startswith("#/"), ref
        resolve(document, {"$ref": ref})


@pytest.mark.parametrize(("method", "path"), API_MD_ROUTES)
def test_every_route_of_the_contract_is_documented(
    document: dict[str, Any], method: str, path: str
) -> None:
    assert method in document["paths"].get(path, {}), f"{method.upper()} {path}"


def test_internal_and_operational_routes_stay_private(document: dict[str, Any]) -> None:
    for path in document["paths"]:
        assert path.startswith("/v1/"), path
        assert not re.search(r"/(internal|ops|healthz|readyz|metrics)\b", path), path


def test_every_operation_is_described_tagged_and_answers_a_schema(
    document: dict[str, Any],
) -> None:
    tags = {tag["name"] for tag in document["tags"]}
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert operation.get("summary") and operation.get("operationId"), where
        assert len(operation["tags"]) == 1 and operation["tags"][0] in tags, where
        responses = operation["responses"]
        successes = [s for s in responses if s.startswith("2")]
        assert successes, where
        for status in successes:
            if status == "204":
                assert "content" not in responses[status], where
                continue
            content = responses[status]["content"]
            assert content and all("schema" in media for media in content.values()), where
        errors = [s for s in responses if s[0] in "45"]
        assert errors, where
        for status, response in responses.items():
            assert "X-Request-ID" in response["headers"], (where, status)


def test_problems_are_problem_json_where_they_apply(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    for method, path, operation in operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status[0] in "45" and path != "/v1/oauth/token":
                assert response["content"] == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
        assert "429" in responses, (method, path)
        if path != "/v1/oauth/token":
            assert {"401", "422", "503"} <= responses.keys(), (method, path)
        if "requestBody" in operation:
            assert "413" in responses, (method, path)
    household_patch = document["paths"]["/v1/households/{household_id}"]["patch"]["responses"]
    assert {"403", "404", "409", "412"} <= household_patch.keys()


def test_operation_ids_are_unique_and_chosen(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for operation_id in ids:
        # FastAPI's own form is `<name>_v1_<path>_<method>`: it changes with every path.
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", operation_id), operation_id
    assert {"listHouseholds", "registerHousehold", "recordVisit", "issueToken"} <= set(ids)


def test_every_tag_is_described_and_used(document: dict[str, Any]) -> None:
    used = {operation["tags"][0] for _, _, operation in operations(document)}
    assert [tag["name"] for tag in document["tags"]] == [
        "Authentication",
        "Areas",
        "Organizations",
        "Households",
        "Persons",
        "Imports",
        "Logbook",
        "Interventions",
        "Progress",
    ]
    assert used == {tag["name"] for tag in document["tags"]}
    assert all(tag["description"] for tag in document["tags"])


def test_writes_document_idempotency_keys_and_if_match(document: dict[str, Any]) -> None:
    key = {"$ref": "#/components/parameters/IdempotencyKey"}
    for method, path, operation in operations(document):
        parameters = operation.get("parameters", [])
        if_match = [p for p in parameters if p.get("name") == "If-Match"]
        # Reads sent as POST run again on a repeated key: it is not offered there.
        if method == "post" and path not in ("/v1/oauth/token", "/v1/persons/lookup"):
            assert key in parameters, path
        if method in ("patch", "put"):
            assert len(if_match) == 1, (method, path)
            # PATCH refuses a write without it (428); PUT checks it only when sent.
            assert if_match[0]["required"] is (method == "patch"), (method, path)
    lookup = document["paths"]["/v1/persons/lookup"]["post"]
    assert key not in lookup.get("parameters", []) and "409" not in lookup["responses"]
    household = document["paths"]["/v1/households/{household_id}"]
    assert "ETag" in household["get"]["responses"]["200"]["headers"]
    assert "ETag" in household["patch"]["responses"]["200"]["headers"]


def test_the_internal_identity_header_is_never_shown(document: dict[str, Any]) -> None:
    assert IDENTITY_HEADER.lower() not in json.dumps(document).lower()


def test_every_route_but_the_token_route_needs_a_token(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearerAuth"]["description"],
    }
    flow = schemes["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/v1/oauth/token"
    assert document["security"] == [{"bearerAuth": []}, {"oauth2": []}]
    for method, path, operation in operations(document):
        assert ("security" in operation) is (path == "/v1/oauth/token"), (method, path)
    assert document["paths"]["/v1/oauth/token"]["post"]["security"] == []


def test_the_token_route_is_rfc_6749_client_credentials(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/oauth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
    request = resolve(document, form["schema"])
    assert set(request["required"]) == {"grant_type", "client_id", "client_secret"}
    assert request["properties"]["grant_type"]["const"] == "client_credentials"
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(resolve(document, answer)["required"]) == {
        "access_token",
        "token_type",
        "expires_in",
    }
    error = operation["responses"]["401"]["content"]["application/json"]["schema"]
    assert "invalid_client" in resolve(document, error)["properties"]["error"]["enum"]


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if method not in ("post", "patch", "put"):
            continue
        for media, content in operation["requestBody"]["content"].items():
            schema = resolve(document, content["schema"])
            assert schema.get("examples") or content.get("example") or content.get("examples"), (
                method,
                path,
                media,
            )


def test_csv_and_svg_answers_are_documented(document: dict[str, Any]) -> None:
    children = document["paths"]["/v1/progress/{area_code}/children"]["get"]["responses"]["200"]
    assert children["content"]["text/csv"] == {"schema": {"type": "string"}}
    chart = document["paths"]["/v1/progress/{area_code}/chart.svg"]["get"]["responses"]["200"]
    assert set(chart["content"]) == {"image/svg+xml"}
    upload = document["paths"]["/v1/imports/households"]["post"]["requestBody"]["content"]
    assert set(upload) == {"text/csv"}


def test_a_schema_name_two_services_use_differently_gets_each_services_prefix(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    # Registry's household status change and logbook's intervention status change.
    assert "StatusChangePublic" not in schemas
    registry, logbook = schemas["RegistryStatusChangePublic"], schemas["LogbookStatusChangePublic"]
    assert "household_id" in registry["properties"]
    assert "household_id" not in logbook["properties"]
    # The logbook's problem found on a visit is not the RFC 9457 problem document.
    assert "dimension" in schemas["LogbookProblem"]["properties"]
    history = document["paths"]["/v1/households/{household_id}/status-history"]["get"]
    answer = history["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["items"] == {"$ref": "#/components/schemas/RegistryStatusChangePublic"}


PROBLEM = {"type": "object", "required": ["type", "title", "status"]}


def service(schemas: dict[str, Any], path: str, answer: str) -> dict[str, Any]:
    """A minimal service document with one route answering one schema (and problems)."""
    response = {
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}
    }
    return {
        "paths": {path: {"get": {"tags": ["areas"], "responses": {"200": response}}}},
        "components": {"schemas": {"Problem": PROBLEM, **schemas}},
    }


def test_merging_never_clobbers_a_schema() -> None:
    shared = {"type": "object", "properties": {"code": {"type": "string"}}}
    a = {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/Shared"}}}
    b = {"type": "object", "properties": {"b": {"type": "integer"}}}
    merged = merge_documents(
        {
            "registry": service({"Shared": shared, "Thing": a}, "/v1/a", "Thing"),
            "logbook": service({"Shared": shared, "Thing": b}, "/v1/b", "Thing"),
        }
    )
    schemas = merged["components"]["schemas"]
    assert schemas["Shared"] == shared
    assert schemas["RegistryThing"] == a and schemas["LogbookThing"] == b
    assert "Thing" not in schemas

    def answer(path: str) -> Any:
        return merged["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]

    assert answer("/v1/a")["schema"] == {"$ref": "#/components/schemas/RegistryThing"}
    assert answer("/v1/b")["schema"] == {"$ref": "#/components/schemas/LogbookThing"}


def test_merging_refuses_a_route_two_services_serve() -> None:
    thing = {"Thing": {"type": "object"}}
    with pytest.raises(ValueError, match=r"GET /v1/a is served twice"):
        merge_documents(
            {
                "registry": service(thing, "/v1/a", "Thing"),
                "logbook": service(thing, "/v1/a", "Thing"),
            }
        )


def test_the_document_does_not_depend_on_the_environment(
    document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A production gateway has none of the services' secrets: the document must not need them.
    monkeypatch.setenv("PINPOINT_ENVIRONMENT", "production")
    monkeypatch.setenv("PINPOINT_MAX_BODY_BYTES", "not a number")
    assert public_openapi.__wrapped__() == document


# Frontend tooling: npm packages pinned in tests/gateway/openapi/package-lock.json.


def run(command: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def node_bin() -> Path:
    """The npm tools, installed once per lock file into a cache outside the repository."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    lock = (TOOLS / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pinpoint-npm"
    home = cache / hashlib.sha256(lock).hexdigest()[:16]
    if not (home / "node_modules" / ".bin").is_dir():
        staging = cache / f"{home.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(TOOLS / name, staging / name)
        run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], staging)
        try:
            staging.rename(home)  # atomic: a concurrent run may have won, which is fine
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return home / "node_modules" / ".bin"


@pytest.fixture(scope="module")
def spec_file(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client_dir(node_bin: Path, spec_file: Path) -> Path:
    """A TypeScript project: the client program beside the types generated from the document.

    `--default-non-nullable false`: a request field with a default may be left out; answer
    fields that are always there are marked required by the document itself.
    """
    project = spec_file.parent / "client"
    project.mkdir()
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(TOOLS / name, project / name)
    run(
        [
            str(node_bin / "openapi-typescript"),
            str(spec_file),
            "--default-non-nullable",
            "false",
            "--output",
            str(project / "schema.d.ts"),
        ],
        project,
    )
    return project


@pytest.mark.timeout(600)
def test_a_typescript_client_type_checks_against_the_document(
    node_bin: Path, client_dir: Path
) -> None:
    run([str(node_bin / "tsc"), "--noEmit", "--strict", "-p", str(client_dir)], client_dir)


@pytest.mark.timeout(600)
def test_the_type_check_fails_on_a_misused_field(node_bin: Path, client_dir: Path) -> None:
    broken = client_dir.parent / "broken"
    shutil.copytree(client_dir, broken)
    program = (broken / "client.ts").read_text(encoding="utf-8")
    # The same program without the @ts-expect-error before its deliberate misuse.
    (broken / "client.ts").write_text(
        program.replace("// @ts-expect-error: the status", "// the status", 1), encoding="utf-8"
    )
    result = run(
        [str(node_bin / "tsc"), "--noEmit", "--strict", "-p", str(broken)], broken, check=False
    )
    assert result.returncode != 0
    assert "'status' does not exist" in result.stdout, result.stdout


@pytest.mark.timeout(600)
def test_redocly_lint_passes_with_the_recommended_rules(node_bin: Path, spec_file: Path) -> None:
    result = run(
        [
            str(node_bin / "redocly"),
            "lint",
            "--config",
            str(TOOLS / "redocly.yaml"),
            "--format",
            "json",
            str(spec_file),
        ],
        spec_file.parent,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, json.dumps(
        report["problems"], indent=1
    )
    assert result.returncode == 0, result.stderr
