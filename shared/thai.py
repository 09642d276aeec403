"""Thai area codes (DOPA) and citizen IDs: the validation every service agrees on."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator

COUNTRY = "TH"


class AreaLevel(StrEnum):
    country = "country"
    province = "province"
    district = "district"
    subdistrict = "subdistrict"
    village = "village"


_LEVEL_BY_LENGTH = {
    2: AreaLevel.province,
    4: AreaLevel.district,
    6: AreaLevel.subdistrict,
    8: AreaLevel.village,
}
LENGTH_BY_LEVEL = {level: length for length, level in _LEVEL_BY_LENGTH.items()}


def area_level(code: str) -> AreaLevel:
    """The level of a DOPA area code (`TH` is the whole country); ValueError if malformed."""
    if code == COUNTRY:
        return AreaLevel.country
    if not code.isascii() or not code.isdigit() or len(code) not in _LEVEL_BY_LENGTH:
        raise ValueError("an area code is TH or 2, 4, 6 or 8 digits")
    return _LEVEL_BY_LENGTH[len(code)]


def parent_code(code: str) -> str | None:
    """The code of the area that contains this one: its prefix, or TH for a province."""
    level = area_level(code)
    if level is AreaLevel.country:
        return None
    if level is AreaLevel.province:
        return COUNTRY
    return code[: len(code) - 2]


def area_contains(outer: str, inner: str) -> bool:
    """Whether area `outer` contains area `inner` (an area contains itself)."""
    return outer == COUNTRY or inner.startswith(outer)


def _check_area_code(code: str) -> str:
    area_level(code)
    return code


AreaCode = Annotated[str, AfterValidator(_check_area_code)]


def citizen_id_check_digit(first_twelve: str) -> int:
    """The 13th digit of a Thai citizen ID, computed from the first twelve."""
    total = sum(int(d) * (13 - i) for i, d in enumerate(first_twelve))
    return (11 - total % 11) % 10


def normalize_citizen_id(value: str) -> str:
    """Strip the usual separators; raise ValueError unless 13 digits with a right check digit."""
    digits = value.replace("-", "").replace(" ", "")
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        raise ValueError("a citizen ID has 13 digits")
    if digits[0] == "0":
        raise ValueError("a citizen ID does not start with 0")
    if citizen_id_check_digit(digits[:12]) != int(digits[12]):
        raise ValueError("the citizen ID's check digit is wrong")
    return digits


def mask_citizen_id(digits: str) -> str:
    """Show a citizen ID the way it is shown to roles that may not see it: 1-2345-xxxxx-xx-3."""
    return f"{digits[0]}-{digits[1:5]}-xxxxx-xx-{digits[12]}"


def format_citizen_id(digits: str) -> str:
    """The printed form 1-2345-67890-12-3."""
    return f"{digits[0]}-{digits[1:5]}-{digits[5:10]}-{digits[10:12]}-{digits[12]}"


CitizenId = Annotated[str, AfterValidator(normalize_citizen_id)]
