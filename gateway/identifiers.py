"""Checks of the identifiers a record carries: UPN, NHS number, postcode, LA code, dates.

Pure functions. Each ``*_problem`` returns ``None`` when the value is valid,
else a short reason fit for a ``FieldProblem`` ("UPN check letter is X,
expected J"). ``normalise_*`` put a value in its canonical written form.
The DfE LA codes are read once from ``gateway/data/dfe_la_codes.yaml``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date
from importlib import resources
from types import MappingProxyType

import yaml

# --- UPN (DfE unique pupil number) -----------------------------------------

UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # value of a letter = its index (no I, O, S)
_UPN_LENGTH = 13


def upn_check_letter(value: str) -> str:
    """The DfE mod-23 check letter of a UPN (from its characters 2-13).

    Characters 2-13 are weighted 2..13; a letter in position 13 (temporary
    UPN) counts as its index in ``UPN_LETTERS``. The caller ensures the shape.
    """
    total = 0
    for weight, char in enumerate(value[1:_UPN_LENGTH], start=2):
        total += weight * (int(char) if char.isdigit() else UPN_LETTERS.index(char))
    return UPN_LETTERS[total % 23]


def upn_problem(value: str) -> str | None:
    """Why ``value`` is not a valid UPN, or ``None``.

    A UPN is a check letter, 11 digits (LA code, establishment, year, serial)
    and a final digit, or a final letter for a temporary UPN.
    """
    if len(value) != _UPN_LENGTH:
        return f"UPN must be 13 characters, got {len(value)}"
    head, middle, last = value[0], value[1:12], value[12]
    if head not in UPN_LETTERS:
        return "UPN must start with a check letter (A-Z without I, O, S)"
    if not (middle.isascii() and middle.isdigit()):
        return "UPN characters 2-12 must be digits"
    if not ((last.isascii() and last.isdigit()) or last in UPN_LETTERS):
        return "UPN character 13 must be a digit, or a letter for a temporary UPN"
    expected = upn_check_letter(value)
    if head != expected:
        return f"UPN check letter is {head}, expected {expected}"
    return None


# --- NHS number ------------------------------------------------------------

_NHS_SEPARATORS = re.compile(r"[\s-]+")


def normalise_nhs(value: str) -> str:
    """An NHS number without the spaces (or hyphens) people write in it."""
    return _NHS_SEPARATORS.sub("", value)


def nhs_check_digit(digits: str) -> int | None:
    """The mod-11 check digit of the first 9 digits; ``None`` when it would be 10."""
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_problem(value: str) -> str | None:
    """Why ``value`` (normalised first) is not a valid NHS number, or ``None``."""
    digits = normalise_nhs(value)
    if not (digits.isascii() and digits.isdigit()):
        return "NHS number must be 10 digits, found other characters"
    if len(digits) != 10:
        return f"NHS number must be 10 digits, got {len(digits)}"
    expected = nhs_check_digit(digits)
    if expected is None:
        return "NHS number is invalid (its mod-11 check digit would be 10)"
    if int(digits[9]) != expected:
        return f"NHS number check digit is {digits[9]}, expected {expected}"
    return None


# --- UK postcode -----------------------------------------------------------

# Outward code (A9, A99, AA9, AA99, A9A, AA9A) + inward code (9AA), with the
# letters Royal Mail never uses in each position excluded; GIR 0AA is special.
_POSTCODE = re.compile(
    r"^(?:GIR 0AA|"
    r"[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9]{1,2}|[0-9][A-HJKPSTUW]|[A-HK-Y][0-9][ABEHMNPRV-Y])"
    r" [0-9][ABD-HJLNP-UW-Z]{2})$"
)


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code: ``b69 4lt`` -> ``B69 4LT``.

    A value too short or long to be a postcode is only upper-cased and trimmed.
    """
    compact = "".join(value.split()).upper()
    if 5 <= len(compact) <= 7:
        return f"{compact[:-3]} {compact[-3:]}"
    return " ".join(value.split()).upper()


def postcode_problem(value: str) -> str | None:
    """Why ``value`` (normalised first) is not a UK postcode, or ``None``."""
    if _POSTCODE.match(normalise_postcode(value)):
        return None
    return "not a UK postcode"


# --- DfE LA codes ----------------------------------------------------------


def _load_la_codes() -> tuple[Mapping[str, str], Mapping[str, str]]:
    text = resources.files("gateway.data").joinpath("dfe_la_codes.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    current = {str(k): str(v) for k, v in data["current"].items()}
    retired = {str(k): str(v) for k, v in data["retired"].items()}
    return MappingProxyType(current), MappingProxyType(retired)


DFE_LA_CODES, RETIRED_LA_CODES = _load_la_codes()
"""Current DfE LA code -> authority name; retired code -> what replaced it."""


def la_code_problem(value: str) -> str | None:
    """Why ``value`` is not a current DfE LA code, or ``None``."""
    if value in DFE_LA_CODES:
        return None
    if value in RETIRED_LA_CODES:
        return f"{value} is a retired DfE LA code: {RETIRED_LA_CODES[value]}"
    return f"{value} is not a DfE LA code"


# --- dates -----------------------------------------------------------------

_FORMAT_PARTS = {
    "%d": (r"(?P<d>\d{2})", "dd"),
    "%m": (r"(?P<m>\d{2})", "mm"),
    "%Y": (r"(?P<Y>\d{4})", "yyyy"),
    "%b": (r"(?P<b>[A-Za-z]{3})", "MON"),
}
_DIRECTIVE = re.compile(r"%[A-Za-z]")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}  # English whatever the locale
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DateFormatError(ValueError):
    """A value is not a real date in the expected format; ``str()`` is the reason."""


def date_format_label(fmt: str) -> str:
    """How a date format reads to a person: ``%d/%m/%Y`` -> ``dd/mm/yyyy``."""
    return _DIRECTIVE.sub(lambda m: _FORMAT_PARTS.get(m.group(), ("", m.group()))[1], fmt)


@functools.cache
def _shape(fmt: str) -> re.Pattern[str]:
    """A regex for values written exactly as ``fmt`` (day, month and year directives)."""
    parts: list[str] = []
    pos = 0
    for match in _DIRECTIVE.finditer(fmt):
        if match.group() not in _FORMAT_PARTS:
            raise ValueError(f"unsupported date directive {match.group()} in {fmt!r}")
        parts.append(re.escape(fmt[pos : match.start()]))
        parts.append(_FORMAT_PARTS[match.group()][0])
        pos = match.end()
    parts.append(re.escape(fmt[pos:]))
    if not ("%d" in fmt and "%Y" in fmt and ("%m" in fmt or "%b" in fmt)):
        raise ValueError(f"date format {fmt!r} needs a day, a month and a year")
    return re.compile("".join(parts))


def parse_date(value: str, fmt: str) -> date:
    """A real calendar date written exactly as ``fmt``, else ``DateFormatError``.

    ``fmt`` uses ``%d``, ``%m``, ``%Y`` and ``%b`` (English month abbreviation,
    any case). ``31/04/2014`` with ``%d/%m/%Y`` fails ("no such day"), as do
    ``2026-09-15`` (wrong form) and ``1/9/2026`` (not zero-padded).
    """
    found = _shape(fmt).fullmatch(value)
    if found is None:
        label = date_format_label(fmt)
        if _ISO_DATE.fullmatch(value):
            raise DateFormatError(f"date in ISO form, expected {label}")
        raise DateFormatError(f"not a date as {label}")
    parts = found.groupdict()
    month = _MONTHS.get(parts["b"].title(), 0) if parts.get("b") else int(parts["m"])
    try:
        return date(int(parts["Y"]), month, int(parts["d"]))
    except ValueError:
        label = date_format_label(fmt)
        raise DateFormatError(f"no such day (expected a real date as {label})") from None


def format_date(value: date, fmt: str) -> str:
    """``value`` written as ``fmt`` (the inverse of ``parse_date``)."""
    return value.strftime(fmt)
