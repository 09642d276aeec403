"""Dependencies the logbook's routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.logbook.domain.context import SOURCE, Context
from services.logbook.repository import LogbookRepository
from shared.auth import CallerDep
from shared.db import SessionDep
from shared.outbox import Outbox, trace_headers


async def context(request: Request, session: SessionDep, caller: CallerDep) -> Context:
    settings = request.app.state.settings
    return Context(
        caller=caller,
        repo=LogbookRepository(session),
        outbox=Outbox(
            session,
            source=SOURCE,
            namespace=settings.events_namespace,
            headers=trace_headers(request),
        ),
        registry=request.app.state.registry,
        settings=settings,
    )


ContextDep = Annotated[Context, Depends(context)]
