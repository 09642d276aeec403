"""What the registry consumes: logbook events that move a household to `in_progress`.

The registry stays the owner of household status: the first visit or intervention the logbook
records moves a `target` household on, through the same rule as an officer's request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.domain import households
from services.registry.domain.context import SOURCE, Context
from services.registry.repository import RegistryRepository
from services.registry.schemas import HouseholdStatus
from shared.auth import Caller, Role
from shared.consumer import Handler
from shared.events import Event
from shared.events.logbook import InterventionRecorded, VisitRecorded
from shared.outbox import Outbox
from shared.pii import CitizenIdVault

DURABLE = "registry-progress"
LOGBOOK = Caller(subject="service:logbook", role=Role.system, area="TH")
_TARGETS = "registry.targets"  # the batch's households still `target`, in the session's info


async def note_targets(session: AsyncSession, events: Sequence[Event]) -> None:
    """`on_begin`: which of a batch's households are still `target`, in one statement.

    Only the first visit or intervention moves a household on; the events of every other
    household (at national size, nine in ten) are passed over without reading it. One still
    `target` is read and locked by the rule itself, which decides.
    """
    named = set()
    for event in events:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # the handler will tell
            named.add(UUID(str(event.data["household_id"])))
    session.info[_TARGETS] = await RegistryRepository(session).with_status(
        named, HouseholdStatus.target
    )


def handlers(vault: CitizenIdVault, namespace: str) -> dict[str, Handler]:
    """The registry's handlers, bound to its vault and event namespace."""

    async def start_progress(session: AsyncSession, household_id: UUID, reason: str) -> None:
        targets = session.info.get(_TARGETS)
        if targets is not None and household_id not in targets:
            return
        ctx = Context(
            caller=LOGBOOK,
            repo=RegistryRepository(session),
            outbox=Outbox(session, source=SOURCE, namespace=namespace),
            vault=vault,
        )
        await households.start_progress(ctx, household_id, reason)

    async def on_visit(session: AsyncSession, event: Event) -> None:
        data = VisitRecorded.model_validate(event.data)
        await start_progress(session, data.household_id, "first visit recorded")

    async def on_intervention(session: AsyncSession, event: Event) -> None:
        data = InterventionRecorded.model_validate(event.data)
        if data.status != "cancelled":
            await start_progress(session, data.household_id, "intervention recorded")

    return {VisitRecorded.type: on_visit, InterventionRecorded.type: on_intervention}
