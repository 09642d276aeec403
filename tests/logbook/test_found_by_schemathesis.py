"""Answers of the logbook that schemathesis found missing from its OpenAPI document."""

from __future__ import annotations

from uuid import uuid4

from fastapi import FastAPI

from tests.conftest import ClientFactory


async def test_listing_interventions_documents_its_404_and_400(
    logbook_app: FastAPI, logbook_as: ClientFactory
) -> None:
    documented = logbook_app.openapi()["paths"]["/v1/interventions"]["get"]["responses"]
    national = logbook_as("national_admin", "TH")
    unknown = await national.get("/v1/interventions", params={"household_id": str(uuid4())})
    assert unknown.status_code == 404, unknown.text
    assert "404" in documented
    forged = await national.get("/v1/interventions", params={"cursor": "not-a-cursor"})
    assert forged.status_code == 400, forged.text
    assert "400" in documented
