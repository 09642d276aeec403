"""The proof's writers and readers: the data set through the real paths, then the load mix.

Everything here goes through the gateway with bearer tokens it signed itself (a national admin
for set-up, district officers, analysts and mentors of each team for the load), except the
baselines, which send the same requests straight to the owning service with an internal token.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from services.gateway.settings import DEV_SIGNING_KEY, GatewaySettings
from services.gateway.tokens import load_signing_key, sign_token
from services.logbook.imports.generate import Household as HistoryHousehold
from services.logbook.imports.generate import generate_logbook
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.indicators import INDICATORS_BY_CODE
from shared.settings import DEV_INTERNAL_KEY

ADMIN = Caller(subject="proof-admin@TH", role=Role.national_admin, area="TH")
ANALYST = Caller(subject="proof-analyst@TH", role=Role.analyst, area="TH")
TOKEN_TTL = 6 * 3600


class Tokens:
    """Bearer tokens the gateway accepts (its development key), one per caller, made once."""

    def __init__(self) -> None:
        self.settings = GatewaySettings()
        self.key = load_signing_key(DEV_SIGNING_KEY)
        self._made: dict[str, str] = {}
        self._internal: dict[str, str] = {}

    def bearer(self, caller: Caller) -> dict[str, str]:
        key = caller.model_dump_json()
        if key not in self._made:
            self._made[key] = sign_token(
                self.key,
                caller,
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                ttl_seconds=TOKEN_TTL,
            )
        return {"Authorization": f"Bearer {self._made[key]}"}

    def internal(self, caller: Caller) -> dict[str, str]:
        """What the gateway would forward for this caller: for the direct baselines."""
        key = caller.model_dump_json()
        if key not in self._internal:
            self._internal[key] = mint_internal_token(caller, DEV_INTERNAL_KEY, ttl_seconds=3600)
        return {IDENTITY_HEADER: self._internal[key]}


def mentor(team: str, area: str) -> Caller:
    return Caller(subject=f"mentor@{team}", role=Role.mentor, area=area, team_id=UUID(team))


def district_officer(district: str) -> Caller:
    return Caller(subject=f"officer@{district}", role=Role.district_officer, area=district)


async def bounded(
    count: int, concurrency: int, seconds: float, one: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run `one(i)` for i = 0, 1, … from `concurrency` workers until `count` are done or
    `seconds` have passed; how many ran and how long it took."""
    started = time.perf_counter()
    deadline = started + seconds
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            await one(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return next_index, time.perf_counter() - started


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json() if response.content else None


# The data set


@dataclass
class Household:
    id: str
    area_code: str
    dimensions: list[str]
    team: str = ""


@dataclass
class DataSet:
    households: list[Household] = field(default_factory=list)
    teams: dict[str, str] = field(default_factory=dict)  # sub-district → team id
    menus: dict[str, list[str]] = field(default_factory=dict)  # dimension → menu codes
    # Open interventions to move on: "id household-id status".
    planned: deque[str] = field(default_factory=deque)
    visited: set[str] = field(default_factory=set)
    figures: dict[str, Any] = field(default_factory=dict)


async def upload(
    gateway: httpx.AsyncClient,
    tokens: Tokens,
    path: str,
    csv_file: Path,
    within: float,
) -> tuple[dict[str, Any], float]:
    """Upload a file to an import route through the gateway, as the officers' tools do (a
    stream, never one body), and follow its job to its end; the job and the seconds taken."""

    async def chunks() -> Any:
        with csv_file.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                yield chunk

    started = time.perf_counter()
    created = await gateway.post(
        path,
        content=chunks(),
        headers={**tokens.bearer(ADMIN), "Content-Type": "text/csv"},
        timeout=None,
    )
    _ok(created, 202)
    location = created.headers["location"]
    deadline = started + within
    while True:
        job = _ok(await gateway.get(location, headers=tokens.bearer(ADMIN)), 200)
        if job["state"] in ("done", "failed"):
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the import did not finish within {within}s: {job}")
        await asyncio.sleep(0.25)
    if job["state"] != "done":
        raise RuntimeError(f"the import failed: {job}")
    return job, time.perf_counter() - started


async def import_households(
    gateway: httpx.AsyncClient, tokens: Tokens, csv_file: Path, within: float
) -> dict[str, Any]:
    """Upload the generated target list through the gateway and follow the import to its end."""
    summary, seconds = await upload(gateway, tokens, "/v1/imports/households", csv_file, within)
    return {
        "seconds": seconds,
        "rows_read": summary["rows_read"],
        "households_imported": summary["households_imported"],
        "rejected": len(summary.get("rejected") or []),
    }


def write_history_file(data: DataSet, path: Path, entries: int, seed: int) -> None:
    """The logbook history of the data set's households, as the history generator writes it:
    `entries` visits and interventions over three years, in the import format; a part on each
    core (nothing else runs meanwhile), joined in order into the file written at once."""
    households = [(h.id, h.area_code, h.team) for h in data.households]
    until = datetime.now(UTC)
    workers = min(os.cpu_count() or 1, max(1, len(households) // 10_000))
    if workers == 1:  # a small data set: no process to start
        _write_history_part(households, 0, len(households), entries, seed, until, path)
        return
    bounds = [len(households) * n // workers for n in range(workers + 1)]
    parts = [path.with_name(f"{path.name}.{n}") for n in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in [
            pool.submit(
                _write_history_part,
                households[bounds[n] : bounds[n + 1]],
                bounds[n],
                len(households),
                entries,
                seed,
                until,
                parts[n],
            )
            for n in range(workers)
        ]:
            done.result()
    with path.open("wb") as out:
        for part in parts:
            with part.open("rb") as written:
                shutil.copyfileobj(written, out, 1 << 20)
            part.unlink()


def _write_history_part(
    households: list[tuple[str, str, str]],
    start: int,
    count: int,
    entries: int,
    seed: int,
    until: datetime,
    path: Path,
) -> None:
    """The rows of the history file for these households, from position `start` of all
    `count` (the header with the first part)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        for chunk in generate_logbook(
            (HistoryHousehold(*h) for h in households),
            count,
            entries,
            seed=seed,
            until=until,
            start=start,
        ):
            out.write(chunk)


async def import_history(
    gateway: httpx.AsyncClient, tokens: Tokens, csv_file: Path, within: float
) -> dict[str, Any]:
    """Upload a logbook history through the gateway (the logbook's history import) and follow
    the import to its end."""
    job, seconds = await upload(gateway, tokens, "/v1/imports/logbook", csv_file, within)
    if job["rows_rejected"]:
        raise RuntimeError(f"the history import rejected rows: {job['rejected'][:5]}")
    return {
        "entries": job["rows_imported"],
        "seconds": seconds,
        "per_s": job["rows_imported"] / seconds,
        "kinds": {"visit": job["visits_imported"], "intervention": job["interventions_imported"]},
    }


async def list_households(gateway: httpx.AsyncClient, tokens: Tokens) -> list[Household]:
    """Every household, in id order: one cursor, 500 a page. (A cursor a province, four at
    once, took 195 ms a page in the registry's member count at national size against 33-45: a
    province's households are spread over the person table, where a run of ids has its persons
    together.)"""
    found, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = _ok(
            await gateway.get("/v1/households", params=params, headers=tokens.bearer(ADMIN)), 200
        )
        for h in page["items"]:
            dimensions = sorted(
                {INDICATORS_BY_CODE[c].dimension.value for c in h["failed_indicators"]}
            )
            found.append(Household(h["id"], h["area_code"], dimensions))
        if not (cursor := page["next_cursor"]):
            return found


async def teams_and_assignments(
    gateway: httpx.AsyncClient, tokens: Tokens, data: DataSet, concurrency: int
) -> None:
    """A mentor team in every sub-district with households, each household assigned to it."""
    subdistricts = sorted({h.area_code[:6] for h in data.households})
    admin = tokens.bearer(ADMIN)

    async def team(i: int) -> None:
        area = subdistricts[i]
        body = {"kind": "mentor_team", "name": f"ทีมพี่เลี้ยงตำบล {area}", "area_code": area}
        made = _ok(await gateway.post("/v1/organizations", json=body, headers=admin), 201)
        data.teams[area] = str(made["id"])

    started = time.perf_counter()
    await bounded(len(subdistricts), concurrency, 3600, team)
    data.figures["teams"] = len(subdistricts)
    data.figures["teams_seconds"] = time.perf_counter() - started

    # Up to 1,000 households of one sub-district in each request, as a district officer would
    # give a new team its households.
    chunks: list[tuple[str, list[Household]]] = []
    by_team: dict[str, list[Household]] = {}
    for household in data.households:
        household.team = data.teams[household.area_code[:6]]
        by_team.setdefault(household.team, []).append(household)
    for team_id, households in by_team.items():
        chunks += [(team_id, households[n : n + 1000]) for n in range(0, len(households), 1000)]

    async def assign(i: int) -> None:
        team_id, households = chunks[i]
        body = {"team_id": team_id, "household_ids": [h.id for h in households]}
        response = await gateway.post("/v1/households/mentor-team", json=body, headers=admin)
        _ok(response, 200)

    started = time.perf_counter()
    await bounded(len(chunks), concurrency, 7200, assign)
    data.figures["assignments_seconds"] = time.perf_counter() - started


async def load_menus(gateway: httpx.AsyncClient, tokens: Tokens, data: DataSet) -> None:
    response = await gateway.get("/v1/menus", headers=tokens.bearer(ADMIN))
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    for item in items:
        data.menus.setdefault(item["dimension"], []).append(item["code"])


def visit_body(rng: random.Random, household: Household) -> dict[str, Any]:
    dimension = rng.choice(household.dimensions or ["income"])
    return {
        "visited_at": datetime.now(UTC).isoformat(),
        "analysis": {
            "attitude": "อยากมีรายได้ประจำ พร้อมเข้ารับการฝึกอาชีพ",
            "skills": "ทำขนมไทยได้ เคยรับจ้างทั่วไป",
            "resources": "มีที่ดินหลังบ้านประมาณ 1 งาน",
            "way_out": "ฝึกอาชีพระยะสั้นและขอทุนประกอบอาชีพ",
        },
        "capitals": {k: rng.randint(1, 5) for k in ("human", "physical", "economic")}
        | {k: rng.randint(1, 5) for k in ("natural", "social")},
        "problems": [{"dimension": dimension, "note": "ติดตามต่อเนื่อง"}],
        "note": "เยี่ยมบ้านตามแผน",
    }


def intervention_body(rng: random.Random, household: Household, data: DataSet) -> dict[str, Any]:
    dimension = rng.choice([d for d in household.dimensions if d in data.menus] or ["income"])
    return {
        "household_id": household.id,
        "dimension": dimension,
        "menu_code": rng.choice(data.menus[dimension]),
        "description": "ฝึกอาชีพและสนับสนุนทุนตามเมนูแก้จน",
        "amount_thb": f"{rng.randrange(500, 20_000, 100)}.00",
    }


@dataclass
class Writer:
    """Logbook writes as each household's mentor team, through the gateway."""

    gateway: httpx.AsyncClient
    tokens: Tokens
    data: DataSet

    def _as_mentor(self, household: Household) -> dict[str, str]:
        return self.tokens.bearer(mentor(household.team, household.area_code[:6]))

    async def visit(self, rng: random.Random, household: Household) -> httpx.Response:
        response = await self.gateway.post(
            f"/v1/households/{household.id}/visits",
            json=visit_body(rng, household),
            headers=self._as_mentor(household),
        )
        if response.status_code == 201:
            self.data.visited.add(household.id)
        return response

    async def intervention(self, rng: random.Random, household: Household) -> httpx.Response:
        response = await self.gateway.post(
            "/v1/interventions",
            json=intervention_body(rng, household, self.data),
            headers=self._as_mentor(household),
        )
        if response.status_code == 201:
            self.data.planned.append(f"{response.json()['id']} {household.id} planned")
        return response

    async def move_on(self, rng: random.Random, status: str) -> httpx.Response | None:
        """Move an open intervention on (completed, in progress or cancelled), if any is open."""
        if not self.data.planned:
            return None
        intervention, household_id, current = self.data.planned.popleft().split()
        if current == status:  # in progress already: finish it
            status = "completed"
        household = self.by_id[household_id]
        response = await self.gateway.post(
            f"/v1/interventions/{intervention}/status",
            json={"status": status, "note": "บันทึกผลการช่วยเหลือ"},
            headers=self._as_mentor(household),
        )
        if response.status_code == 200 and status == "in_progress":
            self.data.planned.append(f"{intervention} {household_id} {status}")
        return response

    @cached_property
    def by_id(self) -> dict[str, Household]:
        return {h.id: h for h in self.data.households}


# The load mix

# Per 100 requests. Reads: officers list their district's households and watch progress
# (DESIGN.md §8: dashboards must answer from projections, seconds behind). Writes follow the
# logbook's shape over three years (issue 8: 10,000,000 entries for 1,000,000 households, about
# ten each): a visit and an intervention for most entries, one in two interventions completed
# later, and about one household status change (graduation, or back into care) per ten entries.
MIX = {
    "GET /v1/households?area_code=": 30,
    "GET /v1/progress/{area}": 25,
    "GET /v1/progress/{area}/children": 5,
    "POST /v1/households/{id}/visits": 14,
    "POST /v1/interventions": 14,
    "POST /v1/interventions/{id}/status": 8,
    "POST /v1/households/{id}/status": 4,
}
READS = [route for route in MIX if route.startswith("GET")]


@dataclass
class Sample:
    route: str
    ended: float  # perf_counter
    seconds: float
    ok: bool


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note(self, route: str, started: float, response: httpx.Response, *ok: int) -> None:
        ended = time.perf_counter()
        good = response.status_code in ok
        self.samples.append(Sample(route, ended, ended - started, good))
        if not good and len(self.errors) < 20:
            self.errors.append(f"{route}: {response.status_code} {response.text[:200]}")


@dataclass
class Read:
    """One read, sendable through the gateway or straight to its owning service."""

    route: str
    service: str
    path: str
    params: dict[str, Any]
    caller: Caller


def pick_read(route: str, rng: random.Random, data: DataSet) -> Read:
    areas = data.figures["areas"]
    if route == READS[0]:
        district = rng.choice(areas["district"])
        return Read(
            route,
            "registry",
            "/v1/households",
            {"area_code": district, "limit": 50},
            district_officer(district),
        )
    if route == READS[1]:
        level = rng.choices(("TH", "province", "district", "subdistrict"), (1, 3, 4, 2))[0]
        area = "TH" if level == "TH" else rng.choice(areas[level])
        return Read(route, "analytics", f"/v1/progress/{area}", {}, ANALYST)
    area = rng.choice(["TH", *areas["province"]])
    return Read(route, "analytics", f"/v1/progress/{area}/children", {}, ANALYST)


@dataclass
class Load:
    """The scripted mix, from `concurrency` clients, bounded in count and in time."""

    writer: Writer
    recorder: Recorder
    graduation: deque[tuple[str, str]]  # (household id, its status now)
    rng: random.Random

    async def one(self, _: int) -> None:
        route = self.rng.choices(list(MIX), list(MIX.values()))[0]
        data, gateway, tokens = self.writer.data, self.writer.gateway, self.writer.tokens
        started = time.perf_counter()
        if route in READS:
            read = pick_read(route, self.rng, data)
            response = await gateway.get(
                read.path, params=read.params, headers=tokens.bearer(read.caller)
            )
            self.recorder.note(route, started, response, 200)
            return
        household = self.rng.choice(data.households)
        if route == "POST /v1/households/{id}/visits":
            response = await self.writer.visit(self.rng, household)
        elif route == "POST /v1/interventions":
            response = await self.writer.intervention(self.rng, household)
        elif route == "POST /v1/interventions/{id}/status":
            moved = await self.writer.move_on(self.rng, "completed")
            if moved is None:
                return
            response = moved
            self.recorder.note(route, started, response, 200)
            return
        else:
            if not self.graduation:
                return
            household_id, status = self.graduation.popleft()
            area = self.writer.by_id[household_id].area_code
            to = "in_progress" if status == "graduated" else "graduated"
            response = await gateway.post(
                f"/v1/households/{household_id}/status",
                json={"status": to, "reason": "ติดตามผลแล้ว ผ่านเกณฑ์ จปฐ."},
                headers=tokens.bearer(district_officer(area[:4])),
            )
            self.graduation.append((household_id, to if response.status_code == 201 else status))
        self.recorder.note(route, started, response, 201)


async def in_progress_households(
    gateway: httpx.AsyncClient, tokens: Tokens, count: int
) -> deque[tuple[str, str]]:
    """Up to `count` households in progress (visited in the history): to graduate and reopen."""
    page = _ok(
        await gateway.get(
            "/v1/households",
            params={"status": "in_progress", "limit": min(500, max(1, count))},
            headers=tokens.bearer(ADMIN),
        ),
        200,
    )
    return deque((h["id"], "in_progress") for h in page["items"][:count])


# Baselines: the same requests straight to the owning service, in the same run


async def baseline(
    gateway: httpx.AsyncClient,
    direct: dict[str, httpx.AsyncClient],
    tokens: Tokens,
    data: DataSet,
    cpu: dict[str, Callable[[], float]],
    *,
    requests: int,
    rounds: int,
    seed: int,
) -> dict[str, Any]:
    """Each read of the mix, one request after another, through the gateway and straight to
    its service with the internal token the gateway would forward, alternating in rounds;
    latency of each path and the CPU the gateway and the service spend per request."""
    results: dict[str, Any] = {}
    for route in READS:
        rng = random.Random(seed)
        reads = [pick_read(route, rng, data) for _ in range(requests)]
        seconds: dict[str, list[float]] = {"gateway": [], "direct": []}
        used: dict[str, dict[str, float]] = {p: {"gateway": 0.0, "service": 0.0} for p in seconds}
        per_round = max(1, requests // rounds)
        for r in range(rounds):
            for path in ("gateway", "direct"):
                service = reads[0].service
                before = {"gateway": cpu["gateway"](), "service": cpu[service]()}
                for read in reads[r * per_round : (r + 1) * per_round]:
                    client = gateway if path == "gateway" else direct[read.service]
                    headers = (
                        tokens.bearer(read.caller)
                        if path == "gateway"
                        else tokens.internal(read.caller)
                    )
                    started = time.perf_counter()
                    response = await client.get(read.path, params=read.params, headers=headers)
                    seconds[path].append(time.perf_counter() - started)
                    _ok(response, 200)
                used[path]["gateway"] += cpu["gateway"]() - before["gateway"]
                used[path]["service"] += cpu[service]() - before["service"]
        results[route] = {"seconds": seconds, "cpu_seconds": used, "service": reads[0].service}
    return results
