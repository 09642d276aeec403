"""A seeded, streaming generator of logbook history files in the import format, at any size.

It writes for the households of a CSV of `household_id,area_code,team_id` (the registry's
households, as a proof runner lists them), spreading the entries evenly over them. Each
household gets visits every one to three months over the years asked for, from its own team,
with its five capitals slowly improving; interventions follow visits within two weeks, drawn
from the real solution catalogue (`services/logbook/data/menus.json`), income most often; most
are completed, some in progress or planned (more of them recently), few cancelled; amounts as
the menu item would pay. Times lie within the years before `until`, in order per household.
The same seed, households and `until` give the same file, byte for byte; no more than one
household's entries are held at once.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from services.logbook.imports.csvformat import COLUMNS

MENUS = Path(__file__).resolve().parents[1] / "data" / "menus.json"
BANGKOK = timezone(timedelta(hours=7))
ROWS_PER_CHUNK = 5000
# Of a household's entries, about this share are visits; the rest interventions.
VISIT_SHARE = 0.55
_DIMENSION_WEIGHTS = {"income": 6, "living": 3, "health": 2, "education": 2, "public_access": 1}
_STATUSES = ("completed", "in_progress", "planned", "cancelled")
_OLD_STATUS_WEIGHTS = (82, 8, 5, 5)  # given more than six months ago
_NEW_STATUS_WEIGHTS = (45, 30, 20, 5)  # given in the last six months
# THB an item pays (low, high, step), by menu code; an item not here pays nothing in cash.
_AMOUNTS = {
    "INC-01": (600, 7200, 600),
    "INC-02": (500, 5000, 100),
    "INC-03": (1000, 15000, 500),
    "INC-04": (5000, 50000, 1000),
    "INC-05": (300, 700, 100),
    "INC-06": (5000, 30000, 1000),
    "LIV-01": (5000, 40000, 500),
    "LIV-02": (20000, 120000, 1000),
    "LIV-03": (1500, 6000, 50),
    "LIV-04": (2000, 15000, 100),
    "EDU-02": (3000, 12000, 500),
    "EDU-05": (10000, 60000, 1000),
    "PUB-01": (600, 1000, 100),
    "PUB-02": (800, 1000, 200),
    "PUB-03": (2000, 20000, 500),
    "PUB-05": (1000, 3000, 500),
}
_NOTES = (
    "เยี่ยมบ้าน ติดตามความเป็นอยู่",
    "ติดตามผลการช่วยเหลือ",
    "สมาชิกในบ้านสุขภาพดีขึ้น",
    "ยังไม่มีงานประจำ แนะนำฝึกอาชีพ",
    "มีรายได้เพิ่มจากการขายผัก",
    "ผู้สูงอายุต้องการผู้ดูแล",
    "บ้านทรุดโทรม รอซ่อมแซม",
    "",
)


@dataclass(frozen=True)
class MenuItem:
    code: str
    dimension: str
    name_th: str


def catalogue(path: Path = MENUS) -> dict[str, list[MenuItem]]:
    """The starting solution catalogue, by dimension."""
    items = json.loads(path.read_text(encoding="utf-8"))["items"]
    by_dimension: dict[str, list[MenuItem]] = {}
    for item in items:
        by_dimension.setdefault(item["dimension"], []).append(
            MenuItem(item["code"], item["dimension"], item["name_th"])
        )
    return by_dimension


@dataclass(frozen=True)
class Household:
    household_id: str
    area_code: str
    team_id: str


def read_households(lines: Iterable[str]) -> Iterator[Household]:
    """The households of a `household_id,area_code,team_id` CSV (a header line first)."""
    reader = csv.DictReader(lines)
    missing = {"household_id", "area_code", "team_id"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the households file has no column(s): {', '.join(sorted(missing))}")
    for row in reader:
        yield Household(row["household_id"], row["area_code"], row["team_id"] or "")


def _moment(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


class _Writer:
    """One household's entries as rows of the format, in time order."""

    def __init__(
        self,
        menus: dict[str, list[MenuItem]],
        *,
        seed: int,
        until: datetime,
        years: int,
    ) -> None:
        self.menus = menus
        self.dimensions = list(_DIMENSION_WEIGHTS)
        self.weights = list(_DIMENSION_WEIGHTS.values())
        self.seed = seed
        self.until = until
        self.span = timedelta(days=365 * years)
        self.recent = until - timedelta(days=183)

    def rows(self, household: Household, count: int) -> list[list[str]]:
        rng = random.Random(f"{self.seed}:{household.household_id}")
        visits = max(1, round(count * VISIT_SHARE)) if count else 0
        interventions = count - visits
        # Visits every one to three months, compressed when there are more than fit.
        room = self.span.total_seconds() / max(visits, 1)
        gap_low, gap_high = min(30 * 86400, room / 2), min(90 * 86400, room)
        at = self.until - self.span + timedelta(seconds=rng.uniform(0, gap_high))
        times: list[datetime] = []
        for _ in range(visits):
            times.append(min(_working_hours(rng, at), self.until))
            at += timedelta(seconds=rng.uniform(gap_low, gap_high))
        entries: list[tuple[datetime, int, list[str]]] = []
        capitals = [rng.randint(1, 3) for _ in range(5)]
        for n, visited in enumerate(times):
            if n and rng.random() < 0.3:
                k = rng.randrange(5)
                capitals[k] = min(5, capitals[k] + 1)
            note = rng.choice(_NOTES)
            row = ["visit", household.household_id, household.team_id, _moment(visited)]
            row += ["", "", "", "", "", "", "".join(map(str, capitals)), note, f"s{self.seed}-{n}"]
            entries.append((visited, n, row))
        for n in range(visits, visits + interventions):
            after = times[rng.randrange(len(times))]
            recorded = min(after + timedelta(minutes=rng.randint(30, 14 * 24 * 60)), self.until)
            entries.append((recorded, n, self._intervention(rng, household, recorded, n)))
        entries.sort(key=lambda e: (e[0], e[1]))
        return [row for _, _, row in entries]

    def _intervention(
        self, rng: random.Random, household: Household, at: datetime, n: int
    ) -> list[str]:
        dimension = rng.choices(self.dimensions, self.weights)[0]
        item = rng.choice(self.menus[dimension])
        weights = _NEW_STATUS_WEIGHTS if at > self.recent else _OLD_STATUS_WEIGHTS
        status = rng.choices(_STATUSES, weights)[0]
        completed = ""
        if status == "completed":
            done = at + timedelta(hours=rng.randint(2, 60 * 24))
            completed = _moment(min(done, self.until))
        amount = ""
        if item.code in _AMOUNTS and status != "cancelled":
            low, high, step = _AMOUNTS[item.code]
            amount = str(rng.randrange(low, high + 1, step))
        team = household.team_id if rng.random() < 0.5 else ""
        return [
            "intervention",
            household.household_id,
            team,
            _moment(at),
            dimension,
            item.code,
            amount,
            status,
            completed,
            item.name_th,
            "",
            "",
            f"s{self.seed}-{n}",
        ]


def _working_hours(rng: random.Random, day: datetime) -> datetime:
    """A time between 08:00 and 17:00 in Thailand on that day."""
    local = day.astimezone(BANGKOK).replace(hour=8, minute=0, second=0, microsecond=0)
    return local + timedelta(minutes=rng.randrange(0, 9 * 60))


def generate_logbook(
    households: Iterable[Household],
    household_count: int,
    entries: int,
    *,
    seed: int = 2567,
    years: int = 3,
    until: datetime,
    menus: dict[str, list[MenuItem]] | None = None,
    start: int = 0,
) -> Iterator[str]:
    """The file in chunks of CSV text: `entries` rows spread over `household_count` households
    (the first ones of `households`), within the `years` before `until`.

    With `start`, `households` begins at that position of the whole list and the header is
    left out: the rows are those the whole file has for them, so parts written apart (in
    parallel) and joined in order are the file written at once."""
    if household_count < 1:
        raise ValueError("no households to write for")
    if until.tzinfo is None:
        raise ValueError("until needs an offset")
    writer = _Writer(menus or catalogue(), seed=seed, until=until, years=years)
    out = io.StringIO()
    csv_out = csv.writer(out, lineterminator="\n")
    if not start:
        csv_out.writerow(COLUMNS)
    rows = 0
    for n, household in enumerate(households, start):
        if n >= household_count:
            break
        # An even share: the first households get one more where entries do not divide.
        share = (n + 1) * entries // household_count - n * entries // household_count
        written = writer.rows(household, share)
        csv_out.writerows(written)
        rows += len(written)
        if rows >= ROWS_PER_CHUNK:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            rows = 0
    if out.tell():
        yield out.getvalue()
