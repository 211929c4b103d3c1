"""Who governs a case, where the child lives, and which authorities it involves.

Guidance (Prepare, Principle 2): the process of the initiating
practitioner's authority is followed until the multi-agency (TAC) meeting
allocates a lead professional; the lead professional's authority's process
is followed from then on. Funding goes to where the child lives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from gateway.model import Assessment, EventType, Practitioner


@dataclass(frozen=True)
class Governing:
    """The governing authority of a case and why."""

    la: str
    initiating_la: str
    switched: bool
    lead: Practitioner | None = None
    since: date | None = None

    @property
    def reason(self) -> str:
        if not self.switched:
            return (
                "initiating practitioner's authority "
                "(no lead professional allocated at a TAC meeting yet)"
            )
        return "lead professional allocated at the TAC meeting works there"


def _day(value: datetime | date | None) -> date | None:
    if value is None:
        return None
    return value.date() if isinstance(value, datetime) else value


def initiating_la(a: Assessment, authority: str) -> str:
    return (a.initiator.la_code if a.initiator else None) or authority


def allocated_lead(a: Assessment) -> tuple[Practitioner | None, date | None]:
    """The lead professional allocated at (or after) a TAC meeting, if any."""
    if not a.tac_meetings:
        return None, None
    for meeting in reversed(a.tac_meetings):
        if meeting.lead_professional_agreed is not None:
            return meeting.lead_professional_agreed, _day(meeting.held_on)
    first_tac = min(_day(m.held_on) or date.min for m in a.tac_meetings)
    for event in reversed(a.events):
        if event.type == EventType.LEAD_PROFESSIONAL_ALLOCATED and event.la_code:
            return Practitioner(
                name=event.name or "lead professional", la_code=event.la_code
            ), _day(event.at)
    for period in reversed(a.lead_professionals):
        if period.to_date is None and (period.from_date is None or period.from_date >= first_tac):
            return period.practitioner, period.from_date
    return None, None


def governing(a: Assessment, authority: str) -> Governing:
    """The governing authority of ``a`` as submitted by ``authority``."""
    initiating = initiating_la(a, authority)
    lead, since = allocated_lead(a)
    if lead is None or not lead.la_code:
        return Governing(initiating, initiating, False, lead, since)
    return Governing(lead.la_code, initiating, lead.la_code != initiating, lead, since)


def residence_la(a: Assessment) -> str | None:
    return a.child.address.la_code if a.child.address else None


def moved_to(a: Assessment) -> tuple[str | None, date | None]:
    """The authority the child last moved to, and when."""
    for event in reversed(a.events):
        if event.type == EventType.CHILD_MOVED and event.to_la:
            return event.to_la, _day(event.at)
    return None, None


def plan_las(a: Assessment) -> set[str]:
    """Authorities involved in the plan: action owners and deliverers, lead professionals."""
    found: set[str] = set()
    for action in a.actions:
        found.update(x for x in (action.owner_la, action.delivery_la) if x)
    for period in a.lead_professionals:
        if period.practitioner.la_code:
            found.add(period.practitioner.la_code)
    lead, _ = allocated_lead(a)
    if lead is not None and lead.la_code:
        found.add(lead.la_code)
    return found


def involved_las(a: Assessment, requested: tuple[str, ...], authority: str) -> set[str]:
    """Every authority the record involves besides ``authority``."""
    found = set(plan_las(a)) | set(requested)
    found.add(initiating_la(a, authority))
    for x in (residence_la(a), a.child.school.la_code if a.child.school else None):
        if x:
            found.add(x)
    for meeting in a.tac_meetings:
        found.update(att.la_code for att in meeting.attendees if att.la_code)
    for event in a.events:
        found.update(x for x in (event.from_la, event.to_la) if x)
    found.discard(authority)
    return found


def plan_digest(a: Assessment) -> str:
    """A fingerprint of what makes the plan: actions and lead professionals."""
    content = json.dumps(
        {
            "actions": [
                [x.seq, x.description, x.owner, x.owner_la, x.delivery_la, str(x.due)]
                for x in a.actions
            ],
            "leads": [
                [p.practitioner.name, p.practitioner.la_code, str(p.from_date), str(p.to_date)]
                for p in a.lead_professionals
            ],
        },
        sort_keys=True,
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def family_language(a: Assessment) -> tuple[str | None, bool]:
    """The family's recorded language and whether an interpreter is needed."""
    if a.child.language:
        return a.child.language, bool(a.child.interpreter_needed)
    for carer in a.carers:
        if carer.language:
            return carer.language, bool(carer.interpreter_needed)
    return None, bool(a.child.interpreter_needed) or any(c.interpreter_needed for c in a.carers)
