"""A received Assessment's effect on the receiver's copy of a case thread, judged.

On its own case (``owner == sender``) the sender says everything: the
receiver's copy is what the owner stated. On a case of someone else (the
receiver's own, or a third authority's) on which the sender is a party, the
sender's Assessment is its statement and changes only what
``policy.sovereignty`` lets it: governance and lead professionals only as
the owner or governing authority, the plan likewise (with a consent for a
change), a "do not tell the family" restriction as any party (lifting it
only as its setter); the parties, where the child lives and who initiated
stay the owner's.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.cases.identity import Placement
from gateway.cases.store import CaseThread, LeadEntry
from gateway.model import Assessment, FlagCode, Header
from gateway.policy import sovereignty
from gateway.policy.child import child_key
from gateway.policy.governing import governing, involved_las, plan_digest, residence_la
from gateway.policy.plan import plan_change_refusal

# (kind, counterparty, detail) of a case-log line
Line = tuple[str, str | None, str]


def _leads(body: Assessment) -> tuple[LeadEntry, ...]:
    return tuple(
        LeadEntry(
            p.practitioner.name,
            p.practitioner.la_code,
            p.from_date.isoformat() if p.from_date else None,
            body.child_views,
        )
        for p in body.lead_professionals
    )


def _check_plan(where: str, thread: CaseThread | None, body: Assessment, header: Header) -> None:
    refusal = plan_change_refusal(
        where,
        thread.plan_digest if thread else None,
        thread.plan_consent_ref if thread else None,
        plan_digest(body),
        header.consent_ref,
    )
    if refusal is not None:
        raise refusal


def assessment_thread(
    holder: str, sender: str, place: Placement, body: Assessment, header: Header
) -> tuple[CaseThread, list[Line]]:
    """The thread after the Assessment and the log lines it adds; PolicyRefusal if the
    sender may not make the changes it carries."""
    where = f"message {header.message_id}: case {body.case_ref}"
    owner, thread = place.owner, place.thread
    harm = next((f for f in body.flags if f.code == FlagCode.SIGNIFICANT_HARM), None)
    gov = governing(body, owner)
    lines: list[Line] = []
    if owner == sender:
        _check_plan(where, thread, body, header)
        if thread is not None and thread.governing_la and thread.governing_la != gov.la:
            lines.append(
                (
                    "GOVERNING_AUTHORITY_CHANGED",
                    gov.la,
                    f"from {thread.governing_la} to {gov.la}",
                )
            )
        parties = set(involved_las(body, (), sender)) | {sender, holder}
        inform = (
            (harm.inform_family is not False)
            if harm
            else (thread.inform_family if thread else None)
        )
        return (
            CaseThread(
                authority=holder,
                correlation_id=place.thread_id,
                owner=owner,
                case_ref=body.case_ref,
                child_key=child_key(body.child),
                initiating_la=gov.initiating_la,
                residence_la=residence_la(body),
                governing_la=gov.la,
                governing_since=gov.since.isoformat() if gov.since else None,
                inform_family=inform,
                family_restricted_by=sender if inform is False else None,
                plan_digest=plan_digest(body),
                plan_consent_ref=header.consent_ref,
                parties=tuple(sorted(parties | set(thread.parties if thread else ()))),
                leads=_leads(body),
            ),
            lines,
        )
    assert thread is not None  # a party to someone else's case: the receiver holds it
    new = thread
    if gov.switched and gov.la != thread.governing_la:
        sovereignty.check_governance_change(thread, owner, sender, "the governing authority", where)
        lines.append(
            (
                "GOVERNING_AUTHORITY_CHANGED",
                gov.la,
                f"from {thread.governing_la} to {gov.la} (said by {sender})",
            )
        )
        new = replace(
            new, governing_la=gov.la, governing_since=gov.since.isoformat() if gov.since else None
        )
    if sovereignty.governs(thread, owner, sender):
        _check_plan(where, thread, body, header)
        new = replace(
            new,
            leads=_leads(body) or new.leads,
            plan_digest=plan_digest(body),
            plan_consent_ref=header.consent_ref,
        )
    if harm is not None:
        if harm.inform_family is False:
            new = replace(new, inform_family=False, family_restricted_by=sender)
        elif thread.inform_family is False:
            sovereignty.check_family_lift(thread, owner, sender, where)
            new = replace(new, inform_family=True, family_restricted_by=None)
    return new, lines
