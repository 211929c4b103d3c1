"""The sending authority's own case thread after one of its records: who
governs, the lead professionals, where the child lives, the family
restriction, the child's plan as last sent, and the parties the owner's own
record makes (``docs/sovereignty.md``: the parties are the owner's to say).
Pure: part of the outbound decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from adapters.base import Converted
from gateway.cases.store import CaseThread, LeadEntry
from gateway.model import Assessment
from gateway.policy import rules
from gateway.policy.child import child_key
from gateway.policy.governing import allocated_lead, involved_las, residence_la


@dataclass(frozen=True)
class LogLine:
    """A case-log entry the decision makes (besides one per planned message)."""

    kind: str
    counterparty: str | None
    detail: str


def thread_after(
    authority: str,
    previous: CaseThread | None,
    correlation_id: str,
    record: Converted,
    plan: rules.RecordPlan,
    digest_now: str,
    consent_ref: str | None,
    *,
    sent: bool,
) -> tuple[CaseThread, list[LogLine]]:
    """The sender's own case thread after this record, and the log lines it adds."""
    a: Assessment = record.assessment
    gov = plan.governing
    leads = [
        LeadEntry(
            p.practitioner.name,
            p.practitioner.la_code,
            p.from_date.isoformat() if p.from_date else None,
            a.child_views,
        )
        for p in a.lead_professionals
    ]
    lead, since = allocated_lead(a)
    if lead is not None and all(x.name != lead.name for x in leads):
        leads.append(
            LeadEntry(lead.name, lead.la_code, since.isoformat() if since else None, a.child_views)
        )
    log: list[LogLine] = []
    before = previous.governing_la if previous else gov.initiating_la
    if before != gov.la:
        log.append(
            LogLine(
                "GOVERNING_AUTHORITY_CHANGED", gov.la, f"from {before} to {gov.la}: {gov.reason}"
            )
        )
    if plan.review_by is not None:
        log.append(LogLine("CASE_TRANSFER", None, f"review by {_iso(plan.review_by)}"))
    parties = set(involved_las(a, record.share_with, authority)) | {authority}
    inform = (
        plan.inform_family
        if plan.inform_family is not None
        else (previous.inform_family if previous else None)
    )
    thread = CaseThread(
        authority=authority,
        correlation_id=correlation_id,
        owner=authority,
        case_ref=a.case_ref,
        child_key=child_key(a.child),
        initiating_la=gov.initiating_la,
        residence_la=residence_la(a),
        governing_la=gov.la,
        governing_since=gov.since.isoformat() if gov.since else None,
        inform_family=inform,
        family_restricted_by=(
            authority
            if plan.inform_family is False
            else (previous.family_restricted_by if previous and inform is False else None)
        ),
        plan_digest=digest_now if sent else (previous.plan_digest if previous else None),
        plan_consent_ref=consent_ref if sent else (previous.plan_consent_ref if previous else None),
        parties=tuple(sorted(parties | set(previous.parties if previous else ()))),
        leads=tuple(leads),
    )
    return thread, log


def _iso(value: date) -> str:
    return value.isoformat()
