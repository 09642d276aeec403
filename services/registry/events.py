"""What the registry consumes: logbook events that move a household to `in_progress`.

The registry stays the owner of household status: the first visit or intervention the logbook
records moves a `target` household on, through the same rule as an officer's request.

A batch's handlers only note each household's first such entry; before the batch commits, one
statement finds and locks those of them still `target` and all move together. At national size
nine entries in ten belong to a household already moved on: they cost no statement at all.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.domain import households
from services.registry.domain.context import SOURCE, Context
from services.registry.repository import RegistryRepository
from shared.auth import Caller, Role
from shared.consumer import Handler, TransactionHook
from shared.events import Event
from shared.events.logbook import InterventionRecorded, VisitRecorded
from shared.outbox import Outbox
from shared.pii import CitizenIdVault

DURABLE = "registry-progress"
# Events applied in one transaction at most, when that many wait: a batch costs a few
# statements whatever its size (a national history sends millions at once).
BATCH_SIZE = 1000
LOGBOOK = Caller(subject="service:logbook", role=Role.system, area="TH")
_FIRSTS = "registry.first_entries"  # in the session's info: household -> why it moves on


def _note(session: AsyncSession, household_id: UUID, reason: str) -> None:
    session.info.setdefault(_FIRSTS, {}).setdefault(household_id, reason)


class Entry(BaseModel):
    """What the registry reads of a logbook entry's event: whose entry it is and, for an
    intervention, its status. The rest is the logbook's to validate; reading it all here was
    an eighth of the consumer's time per event."""

    household_id: UUID
    status: str | None = None


async def on_visit(session: AsyncSession, event: Event) -> None:
    data = Entry.model_validate(event.data)
    _note(session, data.household_id, "first visit recorded")


async def on_intervention(session: AsyncSession, event: Event) -> None:
    data = Entry.model_validate(event.data)
    if data.status != "cancelled":
        _note(session, data.household_id, "intervention recorded")


HANDLERS: dict[str, Handler] = {
    VisitRecorded.type: on_visit,
    InterventionRecorded.type: on_intervention,
}


def move_on(vault: CitizenIdVault, namespace: str) -> TransactionHook:
    """The consumer's `before_commit`: move the batch's noted households that are still
    `target` to `in_progress`, bound to the registry's vault and event namespace."""

    async def before_commit(session: AsyncSession) -> None:
        reasons = session.info.pop(_FIRSTS, None)
        if reasons:
            ctx = Context(
                caller=LOGBOOK,
                repo=RegistryRepository(session),
                outbox=Outbox(session, source=SOURCE, namespace=namespace),
                vault=vault,
            )
            await households.start_progress(ctx, reasons)

    return before_commit
