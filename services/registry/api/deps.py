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
        str | None,
        # Logged with the read: PostgreSQL text cannot hold U+0000, so a field error, not a 500.
        Header(max_length=500, pattern=r"^[^\x00]*$", description="Why personal data is read"),
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
        access_reason=_text_header(x_access_reason),
    )


def _text_header(value: str | None) -> str | None:
    """A header of free text as the officer wrote it: HTTP carries bytes, which Starlette reads
    as latin-1; a reason written in Thai arrives as UTF-8 bytes."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not UTF-8: keep what was read
        return value


ContextDep = Annotated[Context, Depends(context)]
