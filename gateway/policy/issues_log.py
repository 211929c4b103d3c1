"""The regional issues log: service gaps and cross-border risks, no personal data.

Guidance (Prepare, Principle 2): "A Regional Risks and Issues Log will be
maintained by the West Midlands CAF Managers/Co-ordinators Group"; (Discuss,
Principle 1): "Where a service can not be provided, this gap in provision
should be recorded on a Regional CAF Issues Log." Every gateway keeps the
region's log; an entry is broadcast to every authority in the directory.
"""

from __future__ import annotations

import re
import uuid

from gateway.errors import PolicyRefusal
from gateway.model import Child, IssueLogEntry

RULE_PERSONAL_DATA = "issues-log.personal-data"
RULE_REPORTER = "issues-log.reporter"
_NAMESPACE = uuid.UUID("2b7d1c0e-8a4f-4f35-9d0c-51b7e3c6a901")


def entry_id(reporting_la: str, correlation_id: str, text: str) -> str:
    """A stable id, so that a re-submitted record does not log the gap twice."""
    return f"ISS-{reporting_la}-{uuid.uuid5(_NAMESPACE, f'{correlation_id}:{text}').hex[:12]}"


_POSTCODE = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}\b", re.IGNORECASE)
_LONG_DIGITS = re.compile(r"\b\d(?:\s?\d){7,}\b")
_UPN = re.compile(r"\b[A-Z]\d{11}[0-9A-Z]\b")
_DATE = re.compile(r"\b\d{1,2}[/.-](?:\d{1,2}|[A-Za-z]{3})[/.-]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b")


def personal_data_in(text: str, children: tuple[Child, ...] = ()) -> list[str]:
    """What in ``text`` looks like personal data (kinds only, never the values)."""
    found = []
    if _POSTCODE.search(text):
        found.append("a postcode")
    if _LONG_DIGITS.search(text):
        found.append("an NHS-number-like digit run")
    if _UPN.search(text):
        found.append("a UPN-like identifier")
    if _DATE.search(text):
        found.append("a date (possibly a date of birth)")
    folded = text.casefold()
    for child in children:
        names = {child.given_name, child.family_name, child.preferred_name or ""}
        if any(n and len(n) > 1 and n.casefold() in folded for n in names):
            found.append("the child's name")
        for ident in child.identifiers:
            if ident.value.replace(" ", "") in text.replace(" ", ""):
                found.append(f"the child's {ident.scheme}")
    return found


def check(entry: IssueLogEntry, children: tuple[Child, ...] = ()) -> None:
    """Refuse an entry whose description carries personal data."""
    found = personal_data_in(entry.description, children)
    if found:
        raise PolicyRefusal(
            RULE_PERSONAL_DATA,
            f"issues-log entry {entry.entry_id} description contains {', '.join(found)}; "
            "the regional log carries no personal data",
        )
