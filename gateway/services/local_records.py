"""One converted local record through policy: its sends, holds, refusals and notices."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, select

from adapters.base import Converted, Rejected
from gateway.cases import store as cases
from gateway.context import Gateway
from gateway.envelope.codec import envelope_to_bytes
from gateway.errors import ConfigError
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Assessment,
    LegalBasis,
    MessageType,
    Notification,
    Purpose,
)
from gateway.policy import consent_register, disclosures, existence, rules, sharing
from gateway.policy.child import child_key
from gateway.policy.config import policy_of
from gateway.policy.governing import (
    allocated_lead,
    initiating_la,
    involved_las,
    plan_digest,
    residence_la,
)
from gateway.policy.issues_log import issues_log as issues_table
from gateway.policy.issues_log import store as store_issue
from gateway.policy.plan import RULE_PLAN_CHANGE
from gateway.services import held
from gateway.services.outcomes import RecordOutcome, disclosure
from gateway.services.signing import correlation_id, digest, new_envelope, signed_message

log = logging.getLogger(__name__)


def rejected_record(authority: str, result: Rejected) -> tuple[NewMessage, RecordOutcome]:
    reasons = tuple(str(p) for p in result.problems)
    message_id = str(uuid.uuid4())
    message = NewMessage(
        message_id=message_id,
        direction=Direction.OUTBOUND,
        authority=authority,
        sender=authority,
        recipient=authority,
        message_type=MessageType.ASSESSMENT.value,
        correlation_id=correlation_id(authority, f"{result.source}:{result.record}"),
        legal_basis=LegalBasis.NO_PERSONAL_DATA.value,
        statuses=((Status.REJECTED, "\n".join(reasons)),),
        case_ref=None,
    )
    return message, RecordOutcome(result.record, None, Status.REJECTED, (message_id,), (), reasons)


# --- one converted record ------------------------------------------------------


@dataclass
class _Made:
    messages: list[NewMessage] = field(default_factory=list)
    events: list[audit.AuditEvent] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    notices: list[RecordOutcome] = field(default_factory=list)


def _known_issue_ids(conn: Connection, authority: str) -> frozenset[str]:
    rows = conn.execute(
        select(issues_table.c.entry_id).where(issues_table.c.authority == authority)
    ).all()
    return frozenset(r[0] for r in rows)


def _refuse_plan_change(items: list[rules.Planned]) -> list[rules.Planned]:
    refusal = sharing.Refusal(
        RULE_PLAN_CHANGE,
        "the plan (actions or lead professional) changed but the consent is the one the "
        "previous plan relied on; it is the child's plan: record the consent for the change",
    )
    return [
        replace(p, refusal=sharing.Refusal(refusal.rule, refusal.reason, p.recipient))
        if p.role == rules.Role.RECORD and p.sendable
        else p
        for p in items
    ]


def converted(gw: Gateway, conn: Connection, authority: str, result: Converted) -> _Made:
    policy = policy_of(gw.settings)
    a = result.assessment
    case = a.case_ref
    thread_id = correlation_id(initiating_la(a, authority), case)
    key = child_key(a.child)
    now = gw.clock()
    record = a.consent or (result.consent.consent if result.consent else None)
    if record is not None:
        registered = consent_register.record(
            conn,
            authority=authority,
            child_key=key,
            case_ref=case,
            consent=record,
            action=consent_register.action_of(record),
            source=consent_register.LOCAL,
            now=now,
        )
    else:
        current = consent_register.effective(consent_register.entries(conn, authority, key))
        registered = consent_register.Registered(current, current, added=False)
    consent = registered.after
    if registered.added and not registered.newly_withdrawn:
        held.release_held(gw, conn, authority, key, consent)
    newly = registered.newly_withdrawn if registered.added else frozenset()
    withdrawal_to: tuple[str, ...] = ()
    if newly:
        withdrawal_to = disclosures.past_recipients(conn, authority, key)
        disclosures.stop_queued(
            gw.ledger,
            conn,
            authority,
            key,
            lambda r: (
                sharing.covers(consent, policy, authority, r, Purpose.SHARE_CROSS_BORDER) is None
            ),
        )
    thread = cases.get(conn, authority, thread_id)
    ctx = rules.RecordContext(
        authority=authority,
        directory=gw.settings.directory,
        policy=policy,
        assessment=a,
        consent_change=result.consent,
        requested=result.share_with,
        purpose=result.purpose,
        consent=consent,
        correlation_id=thread_id,
        today=now.date(),
        newly_withdrawn=newly,
        withdrawal_recipients=withdrawal_to,
        sent_notices=frozenset(cases.notice_keys(conn, authority, thread_id)),
        agreements=frozenset(cases.agreements(conn, authority)),
        known_issue_ids=_known_issue_ids(conn, authority),
        inform_family=thread.inform_family if thread else None,
    )
    plan = rules.plan_record(ctx)
    digest_now = plan_digest(a)
    consent_ref = consent.reference(authority)
    items = plan.items
    if (
        thread is not None
        and thread.plan_digest
        and thread.plan_digest != digest_now
        and consent_ref == thread.plan_consent_ref
    ):
        items = _refuse_plan_change(items)
    made = _Made()
    record_ids: list[str] = []
    notice_ids: dict[bool, list[str]] = {True: [], False: []}
    notice_to: list[str] = []
    notice_reasons: list[str] = []
    record_to: list[str] = []
    record_reasons: list[str] = []
    held_any = False
    for item in items:
        message = _materialise(gw, authority, thread_id, case, key, item)
        made.messages.append(message)
        if item.sendable:
            made.events.extend(_audit(message, item))
        if item.role == rules.Role.RECORD:
            record_ids.append(message.message_id)
            if item.sendable:
                record_to.append(item.recipient)
            elif item.held is not None:
                held_any = True
                record_reasons.append(str(item.held))
            elif item.refusal is not None:
                record_reasons.append(str(item.refusal))
        else:
            notice_ids[item.sendable].append(message.message_id)
            if item.sendable:
                notice_to.append(item.recipient)
            elif item.refusal is not None:
                notice_reasons.append(str(item.refusal))
        _log_item(conn, authority, thread_id, now, item, message)
    status = Status.SIGNED if record_to else Status.HELD_LOCAL if held_any else Status.REJECTED
    made.outcomes.append(
        RecordOutcome(
            result.record,
            case,
            status,
            tuple(record_ids),
            tuple(dict.fromkeys(record_to)),
            tuple(record_reasons),
        )
    )
    if notice_ids[True]:
        made.notices.append(
            RecordOutcome(
                f"{result.record}:notices",
                case,
                Status.SIGNED,
                tuple(notice_ids[True]),
                tuple(dict.fromkeys(notice_to)),
                (),
                kind="notices",
            )
        )
    if notice_ids[False]:
        made.notices.append(
            RecordOutcome(
                f"{result.record}:notices",
                case,
                Status.REJECTED,
                tuple(notice_ids[False]),
                (),
                tuple(notice_reasons),
                kind="notices",
            )
        )
    for entry in plan.issues:
        store_issue(conn, authority, entry, now)
    _save_thread(
        conn,
        authority,
        thread_id,
        a,
        result,
        key,
        plan,
        thread,
        now,
        sent=bool(record_to),
        digest_now=digest_now,
        consent_ref=consent_ref,
    )
    _index(gw, conn, authority, thread_id, a)
    return made


def _materialise(
    gw: Gateway, authority: str, thread: str, case: str, key: str, item: rules.Planned
) -> NewMessage:
    personal = item.legal_basis != LegalBasis.NO_PERSONAL_DATA
    message_type = MessageType(type(item.body).__name__)
    if item.sendable:
        env = new_envelope(
            gw.clock,
            sender=authority,
            recipient=item.recipient,
            body=item.body,
            correlation=thread,
            legal_basis=item.legal_basis,
            purpose=item.purpose,
            consent_ref=item.consent_ref,
            safeguarding=item.safeguarding,
        )
        return signed_message(gw, env, case_ref=case, child_key=key if personal else None)
    refused = NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.OUTBOUND,
        authority=authority,
        sender=authority,
        recipient=item.recipient,
        message_type=message_type.value,
        correlation_id=thread,
        legal_basis=item.legal_basis.value,
        purpose=item.purpose.value if item.purpose else None,
        case_ref=case,
        child_key=key if personal else None,
        statuses=((Status.ACCEPTED, None), (Status.REJECTED, str(item.refusal))),
    )
    if item.held is None:
        return refused
    # Kept, unsigned, so the local record of what was held is complete.
    local = new_envelope(
        gw.clock,
        sender=authority,
        recipient=item.recipient,
        body=item.body,
        correlation=thread,
        legal_basis=item.legal_basis,
        purpose=item.purpose,
    )
    data = envelope_to_bytes(local)
    return replace(
        refused,
        message_id=local.header.message_id,
        statuses=((Status.ACCEPTED, None), (Status.HELD_LOCAL, str(item.held))),
        digest=digest(data),
        body=data,
    )


def _audit(message: NewMessage, item: rules.Planned) -> list[audit.AuditEvent]:
    events = []
    if message.legal_basis != LegalBasis.NO_PERSONAL_DATA.value:
        events.append(disclosure(message))
    if item.safeguarding is not None:
        events.append(
            audit.AuditEvent(
                actor=item.safeguarding.approver,
                action="SAFEGUARDING_OVERRIDE",
                authority=message.sender,
                counterparty=message.recipient,
                legal_basis=LegalBasis.SAFEGUARDING.value,
                message_id=message.message_id,
                digest=message.digest,
                detail=item.safeguarding.reason,
            )
        )
    return events


def _log_item(
    conn: Connection, authority: str, thread: str, now: datetime, item: rules.Planned, m: NewMessage
) -> None:
    kind_of = (
        f"NOTICE_SENT:{item.body.type.value}"
        if isinstance(item.body, Notification)
        else f"SENT:{m.message_type}"
    )
    if item.held is not None:
        kind_of, detail = f"HELD:{m.message_type}", str(item.held)
    elif item.refusal is not None:
        kind_of, detail = f"REFUSED:{m.message_type}", str(item.refusal)
    else:
        detail = f"{m.legal_basis} {m.purpose or ''}".strip()
    cases.log(
        conn,
        authority,
        thread,
        now,
        kind_of,
        counterparty=item.recipient,
        message_id=m.message_id,
        notice_key=item.notice_key if item.sendable else None,
        detail=detail,
    )


def _save_thread(
    conn: Connection,
    authority: str,
    thread_id: str,
    a: Assessment,
    result: Converted,
    key: str,
    plan: rules.RecordPlan,
    previous: cases.CaseThread | None,
    now: datetime,
    *,
    sent: bool,
    digest_now: str,
    consent_ref: str | None,
) -> None:
    gov = plan.governing
    leads = [
        cases.LeadEntry(
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
            cases.LeadEntry(
                lead.name, lead.la_code, since.isoformat() if since else None, a.child_views
            )
        )
    before = previous.governing_la if previous else gov.initiating_la
    if before != gov.la:
        cases.log(
            conn,
            authority,
            thread_id,
            now,
            "GOVERNING_AUTHORITY_CHANGED",
            counterparty=gov.la,
            detail=f"from {before} to {gov.la}: {gov.reason}",
        )
    if plan.review_by is not None:
        cases.log(
            conn,
            authority,
            thread_id,
            now,
            "CASE_TRANSFER",
            detail=f"review by {plan.review_by.isoformat()}",
        )
    parties = set(involved_las(a, result.share_with, authority)) | {authority}
    cases.save(
        conn,
        cases.CaseThread(
            authority=authority,
            correlation_id=thread_id,
            case_ref=a.case_ref,
            child_key=key,
            initiating_la=gov.initiating_la,
            residence_la=residence_la(a),
            governing_la=gov.la,
            governing_since=gov.since.isoformat() if gov.since else None,
            inform_family=plan.inform_family
            if plan.inform_family is not None
            else (previous.inform_family if previous else None),
            plan_digest=digest_now if sent else (previous.plan_digest if previous else None),
            plan_consent_ref=consent_ref
            if sent
            else (previous.plan_consent_ref if previous else None),
            parties=tuple(sorted(parties | set(previous.parties if previous else ()))),
            leads=tuple(leads),
        ),
        now,
    )


def _index(gw: Gateway, conn: Connection, authority: str, thread: str, a: Assessment) -> None:
    """Make the case findable by existence queries (keyed hashes only)."""
    path = policy_of(gw.settings).existence_key_file
    if not path.exists():
        return
    try:
        key = existence.read_key(path)
    except ConfigError as exc:
        log.warning("existence index not updated: %s", exc)
        return
    existence.index_child(conn, authority, thread, existence.keyed_hashes(key, a.child))
