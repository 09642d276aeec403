"""Schemathesis against the public document, through the gateway, with valid bearer tokens.

As a national admin (the widest rights, so most calls reach the code), every operation of
`/openapi.json` gets its explicit examples, schemathesis's coverage cases (boundary values,
missing and wrong fields, unexpected methods) and a bounded number of random cases, valid and
invalid; then, as a district officer, the examples and a few random cases, which meet the
scope checks. Every answer must be no server error and exactly what the document says:
status code, media type, headers and body.

The services run in this test's event loop (their connection pools belong to it), so the
Hypothesis tests run in a worker thread and hand each request back to the loop; schemathesis's
own ASGI transport would run the gateway in an event loop of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.generation.overrides import with_config_headers
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth import Role
from tests.conftest import eventually
from tests.gateway.conftest import GATEWAY_URL, Gateway, GatewayFactory, token
from tests.logbook.support import intervention
from tests.registry.imports_support import CSV, csv_bytes, row
from tests.registry.support import citizen_id, create_organization, household, person

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Random cases per operation on top of its examples (and, for the admin, coverage cases):
# about 3,000 calls in all, a minute on two cores.
ADMIN_EXAMPLES = 8
OFFICER_EXAMPLES = 3
REQUEST_TIMEOUT_SECONDS = 30.0
IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 190  # of the 200 the document allows: room for a suffix
# The village the document's examples name (villages are added through the API).
EXAMPLE_VILLAGE = {"code": "24010401", "name_th": "บ้านหน้าเมือง", "name_en": "Ban Na Mueang"}


def settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same cases on every run: CI is reproducible
        database=None,
        # A failure is reported as found: shrinking would replay it many more times.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


async def seed(gateway: Gateway) -> dict[str, str]:
    """Records for path parameters to name, so that calls also get past the 404s."""
    admin = gateway.as_(Role.national_admin, "TH")
    village = await admin.post("/v1/areas", json=EXAMPLE_VILLAGE)
    assert village.status_code == 201, village.text
    team = await create_organization(admin, "mentor_team", "240101")
    agency = await create_organization(admin, "agency", "24", ministry="มหาดไทย")
    member = await admin.post(
        f"/v1/organizations/{team['id']}/members",
        json={"name": "สมศรี มีสุข", "position": "พี่เลี้ยง", "subject": "mentor-somsri"},
    )
    assert member.status_code == 201, member.text
    registered = await admin.post(
        "/v1/households",
        json=household("240101", members=[person(citizen_id=citizen_id(), relation="head")]),
    )
    assert registered.status_code == 201, registered.text
    household_id = registered.json()["id"]
    members = await admin.get(f"/v1/households/{household_id}/members")
    assigned = await admin.put(
        f"/v1/households/{household_id}/mentor-team", json={"team_id": team["id"]}
    )
    assert assigned.status_code == 200, assigned.text

    async def planned() -> httpx.Response | None:
        answer = await admin.post(
            "/v1/interventions", json=intervention(household_id, agency_id=agency["id"])
        )
        return answer if answer.status_code == 201 else None

    planned_intervention = await eventually(planned, what="the logbook knows the household")
    imported = await admin.post(
        "/v1/imports/households", content=csv_bytes([row(area_code="240102")]), headers=CSV
    )
    assert imported.status_code == 202, imported.text
    return {
        "organization_id": team["id"],
        "team_id": team["id"],
        "agency_id": agency["id"],
        "member_id": member.json()["id"],
        "household_id": household_id,
        "person_id": members.json()[0]["id"],
        "intervention_id": planned_intervention.json()["id"],
        "import_id": imported.json()["id"],
        "code": "2401",
        "area_code": "2401",
    }


def naming_seeded(known: dict[str, str], values: Any) -> Any:
    """The values with each field that names a record naming the seeded one."""
    if not isinstance(values, dict):
        return values
    return {**values, **{name: known[name] for name in values if name in known}}


def or_seeded(known: dict[str, str], values: Any) -> st.SearchStrategy[Any]:
    """The values as generated, or naming the seeded records."""
    return st.sampled_from([values, naming_seeded(known, values)])


def existing_records(known: dict[str, str]) -> list[Callable[..., Any]]:
    """Schema hooks: path parameters and body fields name the seeded records in the
    documented examples, and in half the random cases."""
    # An area code in a body must be one of its own level (a village, say), so only ids.
    ids = {name: value for name, value in known.items() if name.endswith("_id")}

    def before_add_examples(
        context: schemathesis.HookContext, examples: list[schemathesis.Case]
    ) -> None:
        for case in examples:
            case.path_parameters = naming_seeded(known, case.path_parameters)
            case.body = naming_seeded(ids, case.body)

    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: Any
    ) -> st.SearchStrategy[Any]:
        return or_seeded(known, path_parameters)

    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        return or_seeded(ids, body)

    return [before_add_examples, flatmap_path_parameters, flatmap_body]


class Sender:
    """Send a case's request on the test's event loop (from the Hypothesis thread), check it."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop
        self.calls = 0
        self._keys = itertools.count()

    def __call__(self, case: schemathesis.Case) -> None:
        key = (case.headers or {}).get(IDEMPOTENCY_KEY)
        if key and len(key) < MAX_IDEMPOTENCY_KEY:
            # Generated keys repeat (the document's example above all), and a key reused with
            # another body is a 409 before the route: each write gets a key of its own.
            case.headers[IDEMPOTENCY_KEY] = f"{key}-{next(self._keys)}"
        kwargs = case.as_transport_kwargs(base_url=GATEWAY_URL)
        # The transport's arguments are the `requests` library's: it encodes the body.
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            cookies=kwargs.get("cookies"),
            json=kwargs.get("json"),
            data=kwargs.get("data"),
            files=kwargs.get("files"),
        ).prepare()
        request = self.client.build_request(
            prepared.method or "GET",
            prepared.url or "",
            # As they go on the wire (httpx would encode a str as ASCII).
            headers=[
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in prepared.headers.items()
            ],
            content=prepared.body,
        )
        sent = asyncio.run_coroutine_threadsafe(self.client.send(request), self.loop)
        response = sent.result(timeout=REQUEST_TIMEOUT_SECONDS)
        self.calls += 1
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)


def run_operations(
    schema: schemathesis.BaseSchema,
    send: Sender,
    modes: list[HypothesisTestMode],
    max_examples: int,
    caller: str,
) -> list[str]:
    """Every operation's cases; what went wrong, operation by operation."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        test = create_test(
            operation=operation,
            test_func=send,
            config=HypothesisTestConfig(
                project=schema.config,
                modes=modes,
                settings=settings(max_examples),
                explicit_settings=settings(max_examples),
                override=with_config_headers(schema.config, operation=operation),
            ),
        )
        try:
            test()
        except FailureGroup as exc:  # failed checks: all are reported at the end
            failures.append(f"{operation.label}, as {caller}:\n{exc}")
        except FlakyFailure as exc:  # one that did not fail again when replayed
            failures.append(f"{operation.label}, as {caller} (once):\n{exc.exceptions[0]}")
    return failures


@pytest.mark.timeout(600)
async def test_every_operation_answers_as_the_document_says(
    make_gateway: GatewayFactory,
    registry_app: FastAPI,
    logbook_app: FastAPI,
    analytics_app: FastAPI,
) -> None:
    # A service's unhandled error comes back as a 500 answer, as over the network, not as
    # an exception out of the transport: `not_a_server_error` reports it with its request.
    services = {"registry": registry_app, "logbook": logbook_app, "analytics": analytics_app}
    gateway = await make_gateway(
        {
            name: httpx.ASGITransport(app=app, raise_app_exceptions=False)
            for name, app in services.items()
        },
        # One client making thousands of calls: no rate limit stops it halfway.
        rate_limit_per_second=1e9,
        rate_limit_burst=10**9,
    )
    known = await seed(gateway)
    document = (await gateway.client().get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    for hook in existing_records(known):
        schema.hook(hook)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app, raise_app_exceptions=False),
        base_url=GATEWAY_URL,
    )
    send = Sender(client, asyncio.get_running_loop())
    passes = [
        (Role.national_admin, "TH", list(HypothesisTestMode), ADMIN_EXAMPLES),
        (
            Role.district_officer,
            "2401",
            [HypothesisTestMode.EXAMPLES, HypothesisTestMode.FUZZING],
            OFFICER_EXAMPLES,
        ),
    ]

    def run() -> list[str]:
        failures = []
        for role, area, modes, max_examples in passes:
            bearer = f"Bearer {token(role, area, ttl_seconds=3600)}"
            schema.config.update(base_url=GATEWAY_URL, headers={"Authorization": bearer})
            failures += run_operations(schema, send, modes, max_examples, f"{role.value} of {area}")
        return failures

    async with client:
        failures = await asyncio.to_thread(run)
    assert send.calls > 1000, "schemathesis sent far fewer requests than it should"
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
