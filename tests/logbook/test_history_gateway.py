"""The gateway forwards the history import's routes to the logbook, the target-list import's
still to the registry."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.logbook.settings import LogbookSettings
from tests.conftest import ClientFactory, eventually
from tests.gateway.conftest import GatewayFactory, make_gateway  # noqa: F401 (a fixture)
from tests.logbook.history_support import CSV, PATH, csv_bytes, entry, visit
from tests.logbook.support import household, wait_known


async def test_the_gateway_forwards_an_upload_and_its_job_to_the_logbook(
    make_gateway: GatewayFactory,  # noqa: F811
    registry_app: FastAPI,
    logbook_app: FastAPI,
    as_caller: ClientFactory,
    logbook_settings: LogbookSettings,
) -> None:
    h = await household(as_caller("national_admin", "TH"))
    await wait_known(logbook_settings, h)
    gateway = await make_gateway(
        {
            "registry": httpx.ASGITransport(app=registry_app),
            "logbook": httpx.ASGITransport(app=logbook_app),
        }
    )
    officer = gateway.as_("province_officer", "24")

    response = await officer.post(
        PATH, content=csv_bytes([visit(h, "v"), entry(h, "i")]), headers=CSV
    )
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == f"{PATH}/{response.json()['id']}"

    async def done() -> dict[str, object] | None:
        job = await officer.get(location)
        assert job.status_code == 200, job.text
        body: dict[str, object] = job.json()
        return body if body["state"] == "done" else None

    job = await eventually(done, what="the import is done")
    assert (job["visits_imported"], job["interventions_imported"]) == (1, 1)
    # The registry's own import routes are not the logbook's: it knows no such job.
    registry = await officer.get(f"/v1/imports/{response.json()['id']}")
    assert registry.status_code == 404, registry.text
    assert (await officer.get("/v1/imports/logbook/not-a-uuid")).status_code == 422
