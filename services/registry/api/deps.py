"""Dependencies the registry's routes share: the rule context and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from services.registry.domain.context import SOURCE, Context
from services.registry.repository import RegistryRepository
from shared.auth import CallerDep
from shared.db import SessionDep
from shared.logging import REQUEST_ID_HEADER, request_id_var
from shared.outbox import Outbox


async def context(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    x_access_reason: Annotated[
        str | None, Header(max_length=500, description="Why personal data is read")
    ] = None,
) -> Context:
    settings = request.app.state.settings
    headers = {}
    # The ID this request answers with (the caller's only if it was sane), not the raw header.
    if request_id := request_id_var.get():
        headers[REQUEST_ID_HEADER] = request_id
    if traceparent := request.headers.get("traceparent"):
        headers["traceparent"] = traceparent
    return Context(
        caller=caller,
        repo=RegistryRepository(session),
        outbox=Outbox(session, source=SOURCE, namespace=settings.events_namespace, headers=headers),
        vault=request.app.state.vault,
        access_reason=x_access_reason,
    )


ContextDep = Annotated[Context, Depends(context)]
