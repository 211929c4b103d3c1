"""The canonical fields a declarative (YAML-only) mapping may fill, and their value types.

An administrator writes ``LOCAL_FIELD: <target>`` in ``fields.mapped``; the
target names a place in the canonical model (``gateway/model.py``) and
fixes how the local value is read and written: a date, a flag, a code of a
named code list, an identifier with its check digits, and so on. Targets
under a repeated group (``Assessment.actions.due``) take one value per
group member; element targets (``Assessment.elements.Health.rating``) and
scope flags (``ConsentRecord.scopes.SHARE_CROSS_BORDER``) carry their key
in the name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum

from gateway.model import (
    ActionStatus,
    CaseStatus,
    ConsentRole,
    ConsentScope,
    Element,
    EventType,
    FlagCode,
    Gender,
    Outcome,
)


class Kind(StrEnum):
    """How a local value is read and written."""

    TEXT = "text"
    DATE = "date"  # a calendar date, in one of the mapping's date formats
    INSTANT = "instant"  # a date-time, in one of the mapping's date-time formats
    FLAG = "flag"  # a yes/no value (the mapping's boolean tokens)
    CODE = "code"  # a code of the code list named by the field
    CODES = "codes"  # a list of such codes
    LA = "la"  # a DfE LA code
    LAS = "las"  # a list of DfE LA codes
    UPN = "upn"
    NHS = "nhs"
    POSTCODE = "postcode"
    RATING = "rating"  # a framework rating, 1 to 4


# Canonical type of each code list a mapping may declare (``codes.<name>``).
CODE_LISTS: dict[str, type[str]] = {
    "gender": Gender,
    "status": CaseStatus,
    "outcome": Outcome,
    "ethnicity": str,
    "religion": str,
    "consent_role": ConsentRole,
    "consent_scope": ConsentScope,
    "action_status": ActionStatus,
    "flag": FlagCode,
    "event_type": EventType,
    "la": str,  # local names of authorities -> DfE LA codes (checked when loaded)
}


@dataclass(frozen=True)
class Slot:
    """One canonical field: its value kind and, for codes, the code list it uses."""

    kind: Kind
    codes: str | None = None


def _code(name: str) -> Slot:
    return Slot(Kind.CODE, name)


# Fields filled once per record.
SINGLE: dict[str, Slot] = {
    "Assessment.case_ref": Slot(Kind.TEXT),
    "Assessment.status": _code("status"),
    "Assessment.started_on": Slot(Kind.DATE),
    "Assessment.completed_on": Slot(Kind.DATE),
    "Assessment.strengths": Slot(Kind.TEXT),
    "Assessment.needs": Slot(Kind.TEXT),
    "Assessment.child_views": Slot(Kind.TEXT),
    "Assessment.outcome": _code("outcome"),
    "Assessment.source_system": Slot(Kind.TEXT),
    "Assessment.initiator.name": Slot(Kind.TEXT),
    "Assessment.initiator.role": Slot(Kind.TEXT),
    "Assessment.initiator.organisation": Slot(Kind.TEXT),
    "Assessment.initiator.la_code": Slot(Kind.LA),
    "Assessment.initiator.email": Slot(Kind.TEXT),
    "Child.given_name": Slot(Kind.TEXT),
    "Child.family_name": Slot(Kind.TEXT),
    "Child.preferred_name": Slot(Kind.TEXT),
    "Child.date_of_birth": Slot(Kind.DATE),
    "Child.gender": _code("gender"),
    "Child.ethnicity": _code("ethnicity"),
    "Child.religion": _code("religion"),
    "Child.language": Slot(Kind.TEXT),
    "Child.interpreter_needed": Slot(Kind.FLAG),
    "Child.local_person_id": Slot(Kind.TEXT),
    "Child.identifiers.UPN": Slot(Kind.UPN),
    "Child.identifiers.NHS": Slot(Kind.NHS),
    "Child.address.line1": Slot(Kind.TEXT),
    "Child.address.town": Slot(Kind.TEXT),
    "Child.address.postcode": Slot(Kind.POSTCODE),
    "Child.address.la_code": Slot(Kind.LA),
    "Child.school.name": Slot(Kind.TEXT),
    "Child.school.la_code": Slot(Kind.LA),
    "ConsentRecord.given": Slot(Kind.FLAG),
    "ConsentRecord.given_by": Slot(Kind.TEXT),
    "ConsentRecord.role": _code("consent_role"),
    "ConsentRecord.role_text": Slot(Kind.TEXT),
    "ConsentRecord.gillick_competent": Slot(Kind.FLAG),
    "ConsentRecord.recorded_at": Slot(Kind.DATE),
    "ConsentRecord.scopes": Slot(Kind.CODES, "consent_scope"),
    "ConsentRecord.named_las": Slot(Kind.LAS),
}

# Repeated groups: group name -> part -> slot. ``description`` etc. are the
# model's own field names; each group member becomes one model object.
GROUPS: dict[str, dict[str, Slot]] = {
    "Assessment.carers": {
        "name": Slot(Kind.TEXT),
        "relationship": Slot(Kind.TEXT),
        "parental_responsibility": Slot(Kind.FLAG),
        "interpreter_needed": Slot(Kind.FLAG),
        "language": Slot(Kind.TEXT),
    },
    "Assessment.actions": {
        "description": Slot(Kind.TEXT),
        "owner": Slot(Kind.TEXT),
        "owner_la": Slot(Kind.LA),
        "due": Slot(Kind.DATE),
        "status": _code("action_status"),
        "delivery_la": Slot(Kind.LA),
    },
    "Assessment.lead_professionals": {
        "name": Slot(Kind.TEXT),
        "role": Slot(Kind.TEXT),
        "organisation": Slot(Kind.TEXT),
        "la_code": Slot(Kind.LA),
        "email": Slot(Kind.TEXT),
        "from_date": Slot(Kind.DATE),
        "to_date": Slot(Kind.DATE),
    },
    "Assessment.tac_meetings": {
        "held_on": Slot(Kind.DATE),
        "venue": Slot(Kind.TEXT),
    },
    "Assessment.events": {
        "type": _code("event_type"),
        "at": Slot(Kind.INSTANT),
        "name": Slot(Kind.TEXT),
        "la_code": Slot(Kind.LA),
        "from_la": Slot(Kind.LA),
        "to_la": Slot(Kind.LA),
        "new_postcode": Slot(Kind.POSTCODE),
        "scope": _code("consent_scope"),
    },
    "Assessment.flags": {
        "code": _code("flag"),
        "la_code": Slot(Kind.LA),
        "text": Slot(Kind.TEXT),
        "decided_by": Slot(Kind.TEXT),
        "decided_by_role": Slot(Kind.TEXT),
        "inform_family": Slot(Kind.FLAG),
        "reason": Slot(Kind.TEXT),
    },
    "ConsentRecord.withdrawn": {
        "scope": _code("consent_scope"),
        "at": Slot(Kind.INSTANT),
        "by": Slot(Kind.TEXT),
    },
}

# The parts each group member cannot be without (a member with other parts but
# not these is a problem of the record); a mapping of the group must map them.
GROUP_REQUIRED: dict[str, tuple[str, ...]] = {
    "Assessment.carers": ("name",),
    "Assessment.actions": ("description",),
    "Assessment.lead_professionals": ("name",),
    "Assessment.tac_meetings": ("held_on",),
    "Assessment.events": ("type", "at"),
    "Assessment.flags": ("code",),
    "ConsentRecord.withdrawn": ("scope",),
}

ELEMENT_PARTS: dict[str, Slot] = {
    "rating": Slot(Kind.RATING),
    "concern": Slot(Kind.FLAG),
    "notes": Slot(Kind.TEXT),
}

ELEMENT_PREFIX = "Assessment.elements."
SCOPE_FLAG_PREFIX = "ConsentRecord.scopes."
IDENTIFIER_PREFIX = "Child.identifiers."

# A record cannot be built without these.
REQUIRED = ("Assessment.case_ref", "Child.given_name", "Child.family_name", "Assessment.status")


@dataclass(frozen=True)
class Target:
    """A parsed target: a single field, a group part, an element part or a scope flag.

    ``key`` is the group name, the element, the scope or the identifier scheme.
    """

    text: str
    slot: Slot
    group: str | None = None
    part: str | None = None
    element: Element | None = None
    scope: ConsentScope | None = None
    scheme: str | None = None


def parse_target(text: str) -> Target | None:
    """The target ``text`` names, or ``None`` when it names no field a mapping may fill."""
    if text in SINGLE:
        scheme = None
        if text.startswith(IDENTIFIER_PREFIX):
            scheme = text.removeprefix(IDENTIFIER_PREFIX)
        return Target(text, SINGLE[text], scheme=scheme)
    group, _, part = text.rpartition(".")
    if group in GROUPS and part in GROUPS[group]:
        return Target(text, GROUPS[group][part], group=group, part=part)
    if text.startswith(ELEMENT_PREFIX):
        name, _, part = text.removeprefix(ELEMENT_PREFIX).partition(".")
        if part in ELEMENT_PARTS and name in {e.value for e in Element}:
            return Target(text, ELEMENT_PARTS[part], element=Element(name), part=part)
        return None
    if text.startswith(SCOPE_FLAG_PREFIX):
        name = text.removeprefix(SCOPE_FLAG_PREFIX)
        if name in {s.value for s in ConsentScope}:
            return Target(text, Slot(Kind.FLAG), scope=ConsentScope(name))
        return None
    if text.startswith(IDENTIFIER_PREFIX):
        scheme = text.removeprefix(IDENTIFIER_PREFIX)
        if scheme.isidentifier():
            return Target(text, Slot(Kind.TEXT), scheme=scheme)
    return None


def all_targets() -> list[str]:
    """Every target name, for documentation and error messages."""
    names = list(SINGLE)
    names += [f"{g}.{p}" for g, parts in GROUPS.items() for p in parts]
    names += [f"{ELEMENT_PREFIX}<Element>.{p}" for p in ELEMENT_PARTS]
    names += [f"{SCOPE_FLAG_PREFIX}<Scope>", f"{IDENTIFIER_PREFIX}<scheme>"]
    return names


def unknown_target_hint(text: str) -> str:
    """What to write instead of ``text``: the nearest names and every valid name beside it.

    The names listed are those under the same first step (``Child.``,
    ``Assessment.``, ``ConsentRecord.``), or every name when that step is unknown.
    """
    names = all_targets()
    root = text.partition(".")[0] + "."
    near = [n for n in names if n.startswith(root)] or names
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    said = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{said}valid names: {', '.join(near)} (all in docs/adapters.md, Canonical targets)"
