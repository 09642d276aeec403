"""Which service owns which public path: the gateway's one route table.

Families, not single routes: a family forwards every method and sub-path under its prefix, so a
service adding a route under an existing family needs no change here; the service answers 404
or 405 for what it does not serve. A test checks the table against the services' own route
lists, so a new family cannot be forgotten. The first family that matches wins.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUSEHOLDS_IMPORT_PATH = "/v1/imports/households"
LOGBOOK_IMPORT_PATH = "/v1/imports/logbook"


@dataclass(frozen=True)
class Family:
    """Public paths that go to one service; `upload` ones stream large bodies slowly (an
    upload family is one exact path: the body limit of uploads is looked up by it)."""

    path: str  # a Starlette path template
    service: str
    upload: bool = False


FAMILIES: tuple[Family, ...] = (
    Family("/v1/households/{household_id}/visits", "logbook"),
    Family("/v1/households/{household_id}/logbook", "logbook"),
    Family("/v1/households{rest:path}", "registry"),
    Family("/v1/persons{rest:path}", "registry"),
    Family("/v1/areas{rest:path}", "registry"),
    Family("/v1/indicators{rest:path}", "registry"),
    Family("/v1/organizations{rest:path}", "registry"),
    Family(LOGBOOK_IMPORT_PATH, "logbook", upload=True),
    Family(LOGBOOK_IMPORT_PATH + "/{rest:path}", "logbook"),
    Family(HOUSEHOLDS_IMPORT_PATH, "registry", upload=True),
    Family("/v1/imports{rest:path}", "registry"),
    Family("/v1/menus{rest:path}", "logbook"),
    Family("/v1/interventions{rest:path}", "logbook"),
    Family("/v1/teams{rest:path}", "logbook"),
    Family("/v1/progress{rest:path}", "analytics"),
)
UPLOAD_PATHS = frozenset(family.path for family in FAMILIES if family.upload)
