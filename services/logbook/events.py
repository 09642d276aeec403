"""What the logbook consumes: registry events that keep its read model of households current.

Each handler is small and idempotent in effect (upserts keyed by id), and runs inside the
consumer's transaction together with the record of the event's id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from services.logbook.repository import LogbookRepository
from shared.consumer import Handler
from shared.events import Event
from shared.events.registry import (
    HouseholdAssigned,
    HouseholdRegistered,
    HouseholdStatusChanged,
    HouseholdUpdated,
    OrganizationChanged,
    OrganizationCreated,
    PersonAdded,
)

DURABLE = "logbook-households"
# Events applied in one transaction at most, when that many wait: a batch costs a few
# statements whatever its size (a national target list sends millions at once).
BATCH_SIZE = 1000


class NotKnownYet(LookupError):
    """An event about a household whose registration is not applied yet. Replicas share the
    stream, so a household's assignment can reach one of them before its registration reaches
    the other: raised, the event is tried again a moment later (and dead-lettered if the
    registration never comes), never applied to nothing."""


# Each value the registry's events change, with the column of when it was changed.
CHANGED_AT = {"area_code": "area_at", "mentor_team_id": "team_at", "status": "status_at"}


class Households:
    """One transaction's view of the read model: the households its events name, read and
    locked in one statement before the first handler, changed in memory in event order, and
    written back in one statement each for the households, their members and their status
    rows before the commit. (One statement per event held the logbook to about 500 events a
    second.)

    The writes take their rows' locks households first, then persons, each in id order: the
    order in which a request that learns a household from the registry adds it and its
    members, so the two never wait on each other. (A member written as its event came,
    before the households, could deadlock with such a request.)"""

    KEY = "logbook.households"
    COLUMNS = ("id", *CHANGED_AT, *CHANGED_AT.values())

    def __init__(self, session: AsyncSession) -> None:
        self.repo = LogbookRepository(session)
        self.rows: dict[UUID, dict[str, Any]] = {}  # each household as the batch leaves it
        self.stored_areas: dict[UUID, str] = {}  # each household's area before this batch
        self.registered: set[UUID] = set()  # not in the read model before this batch
        self.changed: set[UUID] = set()  # changed by an event other than its registration
        self.statuses: list[dict[str, Any]] = []
        self.persons: dict[UUID, UUID] = {}  # each member added, to its household

    @classmethod
    def of(cls, session: AsyncSession) -> Households:
        batch = session.info.get(cls.KEY)
        if batch is None:
            batch = session.info[cls.KEY] = cls(session)
        return batch

    async def load(self, household_ids: set[UUID]) -> None:
        for row in await self.repo.lock_households(household_ids - set(self.rows), self.COLUMNS):
            self.rows[row.id] = row._asdict()
            self.stored_areas[row.id] = row.area_code

    def register(self, values: dict[str, Any]) -> None:
        """Add a household unless known already (then what we hold is as new or newer)."""
        if values["id"] not in self.rows:
            self.rows[values["id"]] = values
            self.registered.add(values["id"])
            # Entries may be written meanwhile by a request that learns the household from
            # the registry (in the area it is registered in): a move in this batch takes them.
            self.stored_areas[values["id"]] = values["area_code"]

    def update(self, household_id: UUID, at: datetime, **values: Any) -> None:
        """Set what a change the registry made at `at` set, unless a newer change of the same
        value is held already (an older one delivered late)."""
        row = self.rows.get(household_id)
        if row is None:
            raise NotKnownYet(f"household {household_id} is not registered here yet")
        for name, value in values.items():
            changed_at = CHANGED_AT[name]
            if row.get(changed_at) is not None and at < row[changed_at]:
                continue
            row[name], row[changed_at] = value, at
            self.changed.add(household_id)

    async def write(self) -> None:
        # Registered here and not changed since: added unless someone added it meanwhile (the
        # logbook asks the registry for a household it has not heard of), as one at a time did.
        await self.repo.insert_households(
            [self.rows[h] for h in self.registered - self.changed], replace=False
        )
        await self.repo.insert_households([self.rows[h] for h in self.changed], replace=True)
        await self.repo.add_persons(
            [{"id": p, "household_id": h} for p, h in self.persons.items()], replace=True
        )
        await self.repo.add_household_statuses(self.statuses)
        # A household's entries go with it to the area it moved to, after it (the order a
        # write for it takes them in: the household, then its entries).
        await self.repo.move_entries(
            {
                h: self.rows[h]["area_code"]
                for h in self.changed
                if h in self.stored_areas and self.stored_areas[h] != self.rows[h]["area_code"]
            }
        )


def _named(events: Sequence[Event]) -> set[UUID]:
    named = set()
    for event in events:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # the handler will tell
            named.add(UUID(str(event.data["household_id"])))
    return named


async def load_batch(session: AsyncSession, events: Sequence[Event]) -> None:
    """The consumer's `on_begin`: read and lock every household the batch names."""
    await Households.of(session).load(_named(events))


async def write_batch(session: AsyncSession) -> None:
    """The consumer's `before_commit`: write what the batch's events changed."""
    batch = session.info.pop(Households.KEY, None)
    if batch is not None:
        await batch.write()


async def on_household_registered(session: AsyncSession, event: Event) -> None:
    data = HouseholdRegistered.model_validate(event.data)
    batch = Households.of(session)
    batch.register(
        {
            "id": data.household_id,
            "area_code": data.area_code,
            "mentor_team_id": data.mentor_team_id,
            "status": data.status,
            # No change times: nothing older than a registration can change the household
            # (a change before it is not known yet), and a bulk import's registrations bear
            # the database's clock where the changes after them bear the services'.
        }
    )
    batch.statuses.append(
        {
            "event_id": event.id,
            "household_id": data.household_id,
            "from_status": None,
            "to_status": data.status,
            "reason": "registered",
            "changed_by": event.source,
            "changed_at": event.time,
        }
    )


async def on_household_updated(session: AsyncSession, event: Event) -> None:
    data = HouseholdUpdated.model_validate(event.data)
    Households.of(session).update(data.household_id, event.time, area_code=data.area_code)


async def on_household_assigned(session: AsyncSession, event: Event) -> None:
    data = HouseholdAssigned.model_validate(event.data)
    Households.of(session).update(data.household_id, event.time, mentor_team_id=data.mentor_team_id)


async def on_household_status_changed(session: AsyncSession, event: Event) -> None:
    data = HouseholdStatusChanged.model_validate(event.data)
    batch = Households.of(session)
    batch.update(data.household_id, event.time, status=data.to_status)
    batch.statuses.append(
        {
            "event_id": event.id,
            "household_id": data.household_id,
            "from_status": data.from_status,
            "to_status": data.to_status,
            "reason": data.reason,
            "changed_by": data.changed_by,
            "changed_at": event.time,
        }
    )


async def on_person_added(session: AsyncSession, event: Event) -> None:
    data = PersonAdded.model_validate(event.data)
    Households.of(session).persons[data.person_id] = data.household_id


async def on_organization(session: AsyncSession, event: Event) -> None:
    data = (
        OrganizationCreated if event.type == OrganizationCreated.type else OrganizationChanged
    ).model_validate(event.data)
    await LogbookRepository(session).upsert_organization(
        {
            "id": data.organization_id,
            "kind": data.kind,
            "name": data.name,
            "area_code": data.area_code,
        }
    )


HANDLERS: dict[str, Handler] = {
    HouseholdRegistered.type: on_household_registered,
    HouseholdUpdated.type: on_household_updated,
    HouseholdAssigned.type: on_household_assigned,
    HouseholdStatusChanged.type: on_household_status_changed,
    PersonAdded.type: on_person_added,
    OrganizationCreated.type: on_organization,
    OrganizationChanged.type: on_organization,
}
