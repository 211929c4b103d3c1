"""Sandwell FWI dates: ``DD-MON-YYYY`` and ``DD-MON-YYYY HH:MM`` (English month names).

Parsed by hand rather than with ``%b`` so that the process locale cannot
change what a month is called.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, tzinfo

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SHAPE = re.compile(r"(\d{2})-([A-Za-z]{3})-(\d{4})(?: (\d{2}):(\d{2}))?")


def parse_fwi(value: str, zone: tzinfo) -> date | datetime:
    """A date, or a UTC date-time when the value has a time; ``ValueError`` says why not."""
    match = _SHAPE.fullmatch(value.strip())
    if match is None:
        raise ValueError("not a date as DD-MON-YYYY")
    day, month_name, year, hour, minute = match.groups()
    month_name = month_name.upper()
    if month_name not in MONTHS:
        raise ValueError(f"unknown month {month_name!r} (expected DD-MON-YYYY)")
    try:
        found = date(int(year), MONTHS.index(month_name) + 1, int(day))
        if hour is None:
            return found
        local = datetime.combine(found, time(int(hour), int(minute)), tzinfo=zone)
    except ValueError:
        raise ValueError("no such day or time (expected DD-MON-YYYY)") from None
    return local.astimezone(UTC)


def format_fwi_date(value: date) -> str:
    """``02-OCT-2026``."""
    return f"{value.day:02d}-{MONTHS[value.month - 1]}-{value.year:04d}"


def format_fwi(value: date | datetime, zone: tzinfo) -> str:
    """A date as ``DD-MON-YYYY``; a date-time in local time as ``DD-MON-YYYY HH:MM``."""
    if not isinstance(value, datetime):
        return format_fwi_date(value)
    local = value.astimezone(zone)
    return f"{format_fwi_date(local.date())} {local.hour:02d}:{local.minute:02d}"
