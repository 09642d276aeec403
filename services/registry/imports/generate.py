"""A seeded, streaming generator of target-list files in the import format, at any size.

Households are spread over every real sub-district (geothai), or those of one area; members
get Thai names, valid and distinct citizen IDs, plausible ages, and the household fails one to
four indicators, income most often. The same seed gives the same file, byte for byte.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from datetime import date, timedelta

import geothai

from services.registry.imports.csvformat import COLUMNS
from services.registry.names import FEMALE_NAMES, MALE_NAMES, SURNAMES
from shared.indicators import INDICATORS, Dimension
from shared.thai import area_contains, citizen_id_check_digit

# How often each dimension's indicators fail in target households (income most often).
_DIMENSION_WEIGHTS = {
    Dimension.income: 6,
    Dimension.living: 3,
    Dimension.health: 2,
    Dimension.education: 2,
    Dimension.public_access: 1,
}
_BY_DIMENSION = {d: [i.code for i in INDICATORS if i.dimension is d] for d in Dimension}
# An odd multiplier not divisible by 5 walks every 11-digit tail once: IDs never repeat.
_ID_STEP = 7_919_999_929
_TODAY = date(2026, 1, 1)
ROWS_PER_CHUNK = 2000


def subdistricts(area: str | None = None) -> list[str]:
    """Every real sub-district code, or those inside `area`."""
    codes = [
        s.code
        for p in geothai.provinces()
        for d in geothai.districts(p.code)
        for s in geothai.subdistricts(d.code)
    ]
    if area is not None:
        codes = [c for c in codes if area_contains(area[:6], c)]
    if not codes:
        raise ValueError(f"no sub-district inside area {area}")
    return codes


class _Household:
    def __init__(self, rng: random.Random, serial: int, area: str, house_code: str) -> None:
        self.rng = rng
        self.serial = serial
        self.area = area
        self.house_code = house_code

    def rows(self, next_id: Iterator[str]) -> list[list[str]]:
        rng = self.rng
        surname = rng.choice(SURNAMES)
        head_age = rng.randint(25, 85)
        members = [("head", head_age, rng.choice(("male", "female")))]
        if rng.random() < 0.75:
            other = "female" if members[0][2] == "male" else "male"
            members.append(("spouse", max(20, head_age + rng.randint(-6, 6)), other))
        for _ in range(rng.choices((0, 1, 2, 3, 4), weights=(2, 3, 3, 2, 1))[0]):
            age = max(0, min(head_age - 18, rng.randint(0, 30)))
            members.append(("child", age, rng.choice(("male", "female"))))
        if head_age < 55 and rng.random() < 0.3:
            members.append(("parent", rng.randint(62, 92), rng.choice(("male", "female"))))
        keyed = not self.house_code
        household = [
            self.house_code,
            f"HH{self.serial:09d}" if keyed else "",
            self.area,
            f"{rng.randint(1, 399)} หมู่ {rng.randint(1, 15)}",
            str(rng.choice((2565, 2566, 2567))),
            "|".join(_failed_indicators(rng)),
            "",
            "",
        ]
        rows = []
        for n, (relation, age, sex) in enumerate(members):
            born = _TODAY - timedelta(days=age * 365 + rng.randrange(365))
            if age < 15:
                title = "เด็กชาย" if sex == "male" else "เด็กหญิง"
            else:
                title = "นาย" if sex == "male" else rng.choice(("นาง", "นางสาว"))
            first = rng.choice(MALE_NAMES if sex == "male" else FEMALE_NAMES)
            rows.append(
                # Later members leave the household's fields empty, as the format allows.
                (household if n == 0 else [self.house_code, household[1], *[""] * 6])
                + [
                    next(next_id),
                    title,
                    first,
                    surname,
                    sex,
                    born.isoformat(),
                    relation,
                    "true" if rng.random() < 0.04 else "false",
                    "true" if age >= 18 and rng.random() < 0.85 else "false",
                ]
            )
        return rows


def _failed_indicators(rng: random.Random) -> list[str]:
    count = rng.choices((1, 2, 3, 4), weights=(5, 3, 2, 1))[0]
    chosen: set[str] = set()
    dimensions = list(_DIMENSION_WEIGHTS)
    weights = list(_DIMENSION_WEIGHTS.values())
    while len(chosen) < count:
        chosen.add(rng.choice(_BY_DIMENSION[rng.choices(dimensions, weights=weights)[0]]))
    return sorted(chosen)


def _citizen_ids(rng: random.Random) -> Iterator[str]:
    tail = rng.randrange(10**11)
    while True:
        tail = (tail + _ID_STEP) % 10**11
        twelve = f"{rng.choice('12345678')}{tail:011d}"
        yield twelve + str(citizen_id_check_digit(twelve))


def generate_households(
    households: int, *, seed: int = 2565, area: str | None = None
) -> Iterator[str]:
    """The file as text chunks: the header, then every member of every household."""
    rng = random.Random(seed)
    codes = subdistricts(area)
    next_id = _citizen_ids(random.Random(seed + 1))
    serial_by_district: dict[str, int] = {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    rows = 0
    for serial in range(households):
        subdistrict = rng.choice(codes)
        district = subdistrict[:4]
        house_number = serial_by_district.get(district, 0) + 1
        serial_by_district[district] = house_number
        # One household in twenty has no house code yet and is known by its survey key.
        house_code = "" if rng.random() < 0.05 else f"{district}{house_number:07d}"
        for r in _Household(rng, serial, subdistrict, house_code).rows(next_id):
            writer.writerow(r)
            rows += 1
        if rows >= ROWS_PER_CHUNK:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            rows = 0
    if out.tell():
        yield out.getvalue()
