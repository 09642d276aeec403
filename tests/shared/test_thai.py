"""Thai citizen IDs and DOPA area codes, as every service validates them."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.thai import (
    COUNTRY,
    AreaCode,
    AreaLevel,
    CitizenId,
    area_contains,
    area_level,
    citizen_id_check_digit,
    format_citizen_id,
    mask_citizen_id,
    normalize_citizen_id,
    parent_code,
)

# Worked by hand: 1·13 + 2·12 + … + 2·2 = 352 = 32·11, and (11 − 0) mod 10 = 1.
HAND_CHECKED = "1234567890121"
VALID_IDS = [HAND_CHECKED, "1101700207030", "3100600123450", "5710200001234", "8400100123459"]


@pytest.mark.parametrize("citizen_id", VALID_IDS)
def test_a_valid_citizen_id_is_accepted(citizen_id: str) -> None:
    assert normalize_citizen_id(citizen_id) == citizen_id
    assert citizen_id_check_digit(citizen_id[:12]) == int(citizen_id[12])


@pytest.mark.parametrize("citizen_id", VALID_IDS)
def test_every_wrong_check_digit_is_rejected(citizen_id: str) -> None:
    wrong = [d for d in "0123456789" if d != citizen_id[12]]
    assert len(wrong) == 9
    for digit in wrong:
        with pytest.raises(ValueError, match="check digit"):
            normalize_citizen_id(citizen_id[:12] + digit)


def test_the_check_digit_wraps_from_ten_and_eleven_to_a_single_digit() -> None:
    # A weighted sum ≡ 1 (mod 11) gives 10 → 0; ≡ 0 gives 11 → 1.
    assert citizen_id_check_digit("110170020703") == 0
    assert citizen_id_check_digit("123456789012") == 1


def test_dashes_and_spaces_are_allowed_and_dropped() -> None:
    assert normalize_citizen_id("1-2345-67890-12-1") == HAND_CHECKED
    assert normalize_citizen_id("1 2345 67890 12 1") == HAND_CHECKED


@pytest.mark.parametrize(
    "value",
    [
        "",
        "123456789012",  # 12 digits
        "12345678901210",  # 14 digits
        "123456789012a",
        "1234567890.21",
        "๑๒๓๔๕๖๗๘๙๐๑๒๑",  # Thai digits: str.isdigit() says yes, the check must say no
        "１２３４５６７８９０１２１",  # fullwidth digits
        "+234567890121",
    ],
)
def test_anything_but_thirteen_ascii_digits_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="13 digits"):
        normalize_citizen_id(value)


def test_a_citizen_id_never_starts_with_zero() -> None:
    first_twelve = "023456789012"
    candidate = first_twelve + str(citizen_id_check_digit(first_twelve))
    with pytest.raises(ValueError, match="start with 0"):
        normalize_citizen_id(candidate)


def test_citizen_id_type_validates_in_models() -> None:
    adapter = TypeAdapter(CitizenId)
    assert adapter.validate_python("1-2345-67890-12-1") == HAND_CHECKED
    with pytest.raises(ValidationError):
        adapter.validate_python("1-2345-67890-12-2")


def test_a_masked_citizen_id_shows_only_the_first_five_and_the_last_digit() -> None:
    assert mask_citizen_id(HAND_CHECKED) == "1-2345-xxxxx-xx-1"
    assert mask_citizen_id("3100600123450") == "3-1006-xxxxx-xx-0"


def test_the_printed_form_groups_1_4_5_2_1() -> None:
    assert format_citizen_id(HAND_CHECKED) == "1-2345-67890-12-1"


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (COUNTRY, AreaLevel.country),
        ("24", AreaLevel.province),
        ("2401", AreaLevel.district),
        ("240101", AreaLevel.subdistrict),
        ("24010101", AreaLevel.village),
    ],
)
def test_an_area_codes_length_is_its_level(code: str, level: AreaLevel) -> None:
    assert area_level(code) is level


@pytest.mark.parametrize(
    "code",
    [
        "",
        "2",
        "240",
        "24010",
        "2401010",
        "240101010",
        "th",
        "T",
        "TH24",
        "24a1",
        "๒๔",
        " 24",
    ],
)
def test_a_malformed_area_code_is_rejected(code: str) -> None:
    with pytest.raises(ValueError, match="area code"):
        area_level(code)


def test_an_areas_parent_is_its_prefix_and_provinces_belong_to_the_country() -> None:
    assert parent_code("24010101") == "240101"
    assert parent_code("240101") == "2401"
    assert parent_code("2401") == "24"
    assert parent_code("24") == COUNTRY
    assert parent_code(COUNTRY) is None
    with pytest.raises(ValueError):
        parent_code("240")


def test_an_area_contains_itself_and_what_lies_under_it() -> None:
    assert area_contains("24", "24")
    assert area_contains("24", "2401")
    assert area_contains("24", "24010101")
    assert area_contains("2401", "240101")
    assert area_contains(COUNTRY, "24")
    assert area_contains(COUNTRY, COUNTRY)


def test_an_area_contains_neither_its_neighbours_nor_its_parents() -> None:
    assert not area_contains("24", "25")
    assert not area_contains("24", "2501")
    assert not area_contains("2401", "2402")
    assert not area_contains("2401", "24")
    assert not area_contains("24", COUNTRY)
    assert not area_contains("240101", "24010201")


def test_area_code_type_validates_in_models() -> None:
    adapter = TypeAdapter(AreaCode)
    assert adapter.validate_python("2401") == "2401"
    assert adapter.validate_python(COUNTRY) == COUNTRY
    with pytest.raises(ValidationError):
        adapter.validate_python("240")
