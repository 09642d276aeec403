"""The logbook's one HTTP call to the registry: a household, or a member, it has not heard of
yet."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from shared import tracing
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.errors import ServiceUnavailable

SERVICE_CALLER = Caller(subject="service:logbook", role=Role.system, area="TH")


class RegistryClient:
    """Asks the registry's internal route for a household's id, area, team, status and its
    members' ids."""

    def __init__(
        self,
        base_url: str,
        internal_key: str,
        *,
        timeout: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._key = internal_key
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        tracing.instrument_client(self._client)  # the call joins the trace of what needed it

    async def household(self, household_id: UUID) -> dict[str, Any] | None:
        """The household as the registry knows it, or None if it does not exist."""
        token = mint_internal_token(SERVICE_CALLER, self._key)
        try:
            response = await self._client.get(
                f"/internal/households/{household_id}", headers={IDENTITY_HEADER: token}
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("the registry is not answering; try again soon") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(f"the registry answered {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def aclose(self) -> None:
        await self._client.aclose()
