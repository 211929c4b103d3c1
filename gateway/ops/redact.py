"""Keep personal data out of logs and the dashboard.

Two defences: fields whose *name* says they hold personal data are never
emitted, and identifier-shaped text (UPN, NHS number, UK postcode) inside
free text such as reasons and log messages is replaced by a marker. The
patterns are deliberately broad: a false alarm costs a redacted word, a
miss costs a child's identifier in a log file.
"""

from __future__ import annotations

import re

MARK = "[redacted]"

# Names of log fields (``extra=``) and attributes that carry personal data.
PERSONAL_FIELDS = frozenset(
    {
        "address",
        "birth_date",
        "carer",
        "carers",
        "child",
        "child_name",
        "date_of_birth",
        "dob",
        "email",
        "ethnicity",
        "family_name",
        "first_name",
        "forename",
        "full_name",
        "gender",
        "given_name",
        "identifiers",
        "last_name",
        "nhs",
        "nhs_number",
        "person",
        "phone",
        "postcode",
        "surname",
        "telephone",
        "upn",
    }
)

_PATTERNS = (
    # UPN: a check letter, 11 digits, a digit or letter (13 characters).
    re.compile(r"\b[A-Z]\d{11}[A-Z0-9]\b", re.IGNORECASE),
    # NHS number: 10 digits, optionally written 3-3-4 with spaces or hyphens.
    re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"),
    # UK postcode: outward code, optional space, inward code.
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b", re.IGNORECASE),
)


def redact_text(text: str) -> str:
    """``text`` with every identifier-shaped substring replaced by ``[redacted]``."""
    for pattern in _PATTERNS:
        text = pattern.sub(MARK, text)
    return text


def is_personal_field(name: str) -> bool:
    """Whether a field of this name may hold personal data (never emitted)."""
    return name.lower() in PERSONAL_FIELDS
