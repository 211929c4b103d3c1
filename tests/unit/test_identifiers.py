"""Identifier checks against the identifiers of the three sample exports."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.identifiers import (
    DFE_LA_CODES,
    DateFormatError,
    date_format_label,
    format_date,
    la_code_problem,
    nhs_problem,
    normalise_nhs,
    normalise_postcode,
    parse_date,
    postcode_problem,
    upn_check_letter,
    upn_problem,
)

SAMPLE_UPNS = [
    "J332412014017",  # Dudley
    "Y332410315022",
    "R332412014099",
    "J336203317005",  # Wolverhampton
    "L333200216031",  # Sandwell
    "Z333513017009",
]
SAMPLE_NHS = ["9990000018", "9990000026", "9990000034", "9990000042", "9990000050", "9990000069"]
SAMPLE_POSTCODES = ["WV14 0QL", "DY2 9PL", "B66 1AA", "WS2 8RT", "WV2 3BY", "B70 6QP"]


@pytest.mark.parametrize("upn", SAMPLE_UPNS)
def test_sample_upns_are_valid(upn: str) -> None:
    assert upn_problem(upn) is None


def test_wrong_upn_check_letter_names_the_expected_letter() -> None:
    assert upn_problem("X332412014017") == "UPN check letter is X, expected J"


def test_temporary_upn_with_final_letter_counts_the_letter_value() -> None:
    body = "33241201401"
    # the final letter's value is its index in the table: A=0, so the sum is as for "0"
    assert upn_check_letter("?" + body + "A") == upn_check_letter("?" + body + "0")
    letter = upn_check_letter("?" + body + "K")
    assert upn_problem(letter + body + "K") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("J33241201401", "UPN must be 13 characters, got 12"),
        ("1332412014017", "UPN must start with a check letter (A-Z without I, O, S)"),
        ("I332412014017", "UPN must start with a check letter (A-Z without I, O, S)"),
        ("J3324120140A7", "UPN characters 2-12 must be digits"),
        ("J33241201401I", "UPN character 13 must be a digit, or a letter for a temporary UPN"),
    ],
)
def test_misshapen_upns_say_what_is_wrong(value: str, reason: str) -> None:
    assert upn_problem(value) == reason


@pytest.mark.parametrize("nhs", SAMPLE_NHS)
def test_sample_nhs_numbers_are_valid(nhs: str) -> None:
    assert nhs_problem(nhs) is None


def test_spaced_nhs_numbers_are_normalised_and_valid() -> None:
    assert normalise_nhs("999 000 0042") == "9990000042"
    assert nhs_problem("999 000 0042") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("99900000", "NHS number must be 10 digits, got 8"),
        ("99900000AB", "NHS number must be 10 digits, found other characters"),
        ("9990000019", "NHS number check digit is 9, expected 8"),
        ("0000000060", "NHS number is invalid (its mod-11 check digit would be 10)"),
    ],
)
def test_bad_nhs_numbers_say_what_is_wrong(value: str, reason: str) -> None:
    assert nhs_problem(value) == reason


@pytest.mark.parametrize("postcode", SAMPLE_POSTCODES)
def test_sample_postcodes_are_valid(postcode: str) -> None:
    assert postcode_problem(postcode) is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("b69 4lt", "B69 4LT"),
        ("b694lt", "B69 4LT"),
        (" ec1a  1bb ", "EC1A 1BB"),
        ("gir0aa", "GIR 0AA"),
    ],
)
def test_postcodes_are_normalised_to_upper_case_with_one_space(raw: str, normal: str) -> None:
    assert normalise_postcode(raw) == normal
    assert postcode_problem(raw) is None


@pytest.mark.parametrize("value", ["NOT A POSTCODE", "B69", "QQ1 1AA", "B69 4CI", "12345"])
def test_non_postcodes_are_refused(value: str) -> None:
    assert postcode_problem(value) == "not a UK postcode"


def test_dfe_la_codes_cover_all_153_english_authorities() -> None:
    assert len(DFE_LA_CODES) == 153
    assert DFE_LA_CODES["332"] == "Dudley"
    assert DFE_LA_CODES["336"] == "Wolverhampton"


@pytest.mark.parametrize(
    "code",
    [
        "201",
        "330",
        "331",
        "332",
        "333",
        "334",
        "335",
        "336",
        "420",
        "838",
        "839",
        "815",
        "860",
        "861",
        "884",
        "885",
        "893",
        "894",
        "933",
        "937",
        "940",
        "941",
        "942",
        "943",
    ],
)
def test_current_la_codes_are_accepted(code: str) -> None:
    assert la_code_problem(code) is None


def test_unknown_la_code_is_refused() -> None:
    assert la_code_problem("999") == "999 is not a DfE LA code"


@pytest.mark.parametrize("code", ["909", "928", "835", "836", "837"])
def test_retired_la_codes_are_refused_naming_their_successor(code: str) -> None:
    reason = la_code_problem(code)
    assert reason is not None
    assert reason.startswith(f"{code} is a retired DfE LA code")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("14/03/2014", date(2014, 3, 14)), ("29/02/2016", date(2016, 2, 29))],
)
def test_real_dates_parse(value: str, expected: date) -> None:
    assert parse_date(value, "%d/%m/%Y") == expected
    assert format_date(expected, "%d/%m/%Y") == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("31/04/2014", "no such day (expected a real date as dd/mm/yyyy)"),
        ("29/02/2015", "no such day (expected a real date as dd/mm/yyyy)"),
        ("2026-09-15", "date in ISO form, expected dd/mm/yyyy"),
        ("1/9/2026", "not a date as dd/mm/yyyy"),
        ("", "not a date as dd/mm/yyyy"),
    ],
)
def test_impossible_or_misformatted_dates_are_refused(value: str, reason: str) -> None:
    with pytest.raises(DateFormatError) as caught:
        parse_date(value, "%d/%m/%Y")
    assert str(caught.value) == reason


def test_sandwell_style_month_names_parse() -> None:
    assert parse_date("05-OCT-2026", "%d-%b-%Y") == date(2026, 10, 5)
    assert date_format_label("%d-%b-%Y") == "dd-MON-yyyy"
