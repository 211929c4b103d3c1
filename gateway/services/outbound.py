"""Accepting messages from a local system: convert, apply policy, sign, record.

A message is in the ledger (the outbox) before the caller gets an answer,
so a crash after acceptance loses nothing; the sender loop publishes it.
Every record ends in the ledger: queued to send, held locally, or rejected
with its reasons; none is dropped silently. Policy (``gateway.policy``)
decides, from the consent register at the moment of sending, what each
record produces: the record's own sends and the notices the guidance asks
for (reported as a second outcome, ``record`` suffixed ``:notices``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import BinaryIO

from sqlalchemy import Connection, select

from adapters.base import Converted, Rejected, Result
from gateway.cases import store as cases
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope, envelope_to_bytes
from gateway.errors import ConfigError, PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Assessment,
    Audience,
    ConsentChange,
    Envelope,
    IssueLogEntry,
    LegalBasis,
    MessageType,
    Notification,
    NotificationType,
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
from gateway.policy.issues_log import RULE_REPORTER as RULE_ISSUE_REPORTER
from gateway.policy.issues_log import issues_log as issues_table
from gateway.policy.issues_log import store as store_issue
from gateway.policy.notifications import RULE_FAMILY
from gateway.policy.plan import RULE_PLAN_CHANGE, plan_change_refusal
from gateway.services import held
from gateway.services.signing import correlation_id, digest, new_envelope, signed_message

log = logging.getLogger(__name__)

BATCH = 200
RULE_NPD_CHILD = "basis.no-personal-data-carries-child"
RULE_FUNDING_ROUTE = "funding.residence"
RULE_FUNDING_PROBLEM_ROUTE = "funding.problem-to-initiator"


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one record of a submission (or to the notices it caused)."""

    record: str
    case_ref: str | None
    status: Status
    message_ids: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    kind: str = "record"  # "record", or "notices" for the notices a record caused


@dataclass
class SubmitReport:
    source: str
    outcomes: list[RecordOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status and o.kind == "record")

    @property
    def queued(self) -> int:
        return self.count(Status.SIGNED)

    @property
    def held(self) -> int:
        return self.count(Status.HELD_LOCAL)

    @property
    def rejected(self) -> int:
        return self.count(Status.REJECTED)


Progress = Callable[[RecordOutcome], None]


def _rejected_record(authority: str, result: Rejected) -> tuple[NewMessage, RecordOutcome]:
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


def _converted(gw: Gateway, conn: Connection, authority: str, result: Converted) -> _Made:
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
        events.append(_disclosure(message))
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


def _chunks(results: Iterator[Result], size: int) -> Iterator[list[Result]]:
    chunk: list[Result] = []
    for result in results:
        chunk.append(result)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def submit_local(
    gw: Gateway,
    authority: str,
    adapter_name: str,
    stream: BinaryIO,
    source: str,
    progress: Progress | None = None,
) -> SubmitReport:
    """Convert a local export and accept every record (queued, held or rejected)."""
    adapter = gw.adapters.get(adapter_name)
    gw.signer(authority)  # fail early if this gateway does not host the authority
    report = SubmitReport(source)
    for chunk in _chunks(adapter.read(stream, source), BATCH):
        report.outcomes.extend(submit_results(gw, authority, chunk, progress))
    return report


def submit_results(
    gw: Gateway, authority: str, results: list[Result], progress: Progress | None = None
) -> list[RecordOutcome]:
    """Accept already converted records in one transaction (records first, then notices)."""
    outcomes: list[RecordOutcome] = []
    notices: list[RecordOutcome] = []
    with gw.ledger.transaction() as conn:
        for result in results:
            if isinstance(result, Rejected):
                message, outcome = _rejected_record(authority, result)
                gw.ledger.record([message], conn)
                outcomes.append(outcome)
                continue
            made = _converted(gw, conn, authority, result)
            gw.ledger.record(made.messages, conn)
            audit.append(gw.ledger, made.events, conn)
            outcomes.extend(made.outcomes)
            notices.extend(made.notices)
    if progress is not None:
        for outcome in outcomes:
            progress(outcome)
    return outcomes + notices


def _disclosure(message: NewMessage, actor: str = "gateway") -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=actor,
        action="DISCLOSURE",
        authority=message.sender,
        counterparty=message.recipient,
        legal_basis=message.legal_basis,
        message_id=message.message_id,
        digest=message.digest,
        detail=f"{message.message_type} {message.case_ref or ''}".strip(),
    )


# --- one canonical envelope ----------------------------------------------------


def submit_envelope(gw: Gateway, authority: str, data: bytes) -> RecordOutcome:
    """Accept a canonical XML envelope written by ``authority``'s own system."""
    limits = gw.settings.limits
    root = xmlsafe.parse(data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    gw.schema.validate(root)
    env = element_to_envelope(root)
    return accept_envelope(gw, authority, env)


def accept_envelope(gw: Gateway, authority: str, env: Envelope) -> RecordOutcome:
    """Apply policy to an addressed envelope from ``authority``; sign and queue it."""
    try:
        _check_submission(gw, authority, env)
        with gw.ledger.transaction() as conn:
            extra = _check_policy(gw, conn, authority, env)
            case_ref = getattr(env.body, "case_ref", None)
            child = getattr(env.body, "child", None)
            personal = env.header.legal_basis != LegalBasis.NO_PERSONAL_DATA
            message = signed_message(
                gw,
                env,
                case_ref=case_ref,
                child_key=child_key(child) if child is not None and personal else None,
            )
            events = [_disclosure(message)] if personal else []
            if env.header.legal_basis == LegalBasis.SAFEGUARDING and env.header.safeguarding:
                sg = env.header.safeguarding
                events.append(
                    audit.AuditEvent(
                        actor=sg.approver,
                        action="SAFEGUARDING_OVERRIDE",
                        authority=authority,
                        counterparty=env.header.recipient,
                        legal_basis=LegalBasis.SAFEGUARDING.value,
                        message_id=env.header.message_id,
                        digest=message.digest,
                        detail=sg.reason,
                    )
                )
            for m in extra:
                if m.legal_basis != LegalBasis.NO_PERSONAL_DATA.value:
                    events.append(_disclosure(m))
            gw.ledger.record([message, *extra], conn)
            audit.append(gw.ledger, events, conn)
            if isinstance(env.body, Assessment) and personal:
                thread = cases.get(conn, authority, env.header.correlation_id)
                if thread is not None:
                    cases.save(
                        conn,
                        replace(
                            thread,
                            plan_digest=plan_digest(env.body),
                            plan_consent_ref=env.header.consent_ref,
                        ),
                        gw.clock(),
                    )
            cases.log(
                conn,
                authority,
                env.header.correlation_id,
                gw.clock(),
                f"SENT:{env.header.message_type.value}",
                counterparty=env.header.recipient,
                message_id=env.header.message_id,
                detail=env.header.legal_basis.value,
            )
    except PolicyRefusal as refusal:
        _record_refusal(gw, authority, env, refusal)
        raise
    return RecordOutcome(
        env.header.message_id,
        getattr(env.body, "case_ref", None),
        Status.SIGNED,
        (env.header.message_id, *(m.message_id for m in extra)),
        (env.header.recipient, *(m.recipient for m in extra)),
    )


def _record_refusal(gw: Gateway, authority: str, env: Envelope, refusal: PolicyRefusal) -> None:
    header = env.header
    if gw.ledger.find(message_id=header.message_id, authority=authority, with_history=False):
        return  # the id is taken: the refusal is the caller's answer, the ledger keeps the original
    gw.ledger.record(
        [
            NewMessage(
                message_id=header.message_id,
                direction=Direction.OUTBOUND,
                authority=authority,
                sender=authority,
                recipient=header.recipient,
                message_type=header.message_type.value,
                correlation_id=header.correlation_id,
                legal_basis=header.legal_basis.value,
                purpose=header.purpose.value if header.purpose else None,
                statuses=((Status.ACCEPTED, None), (Status.REJECTED, str(refusal))),
                case_ref=getattr(env.body, "case_ref", None),
            )
        ]
    )


def _check_submission(gw: Gateway, authority: str, env: Envelope) -> None:
    header = env.header
    if header.sender != authority:
        raise PolicyRefusal(
            "submit.sender", f"header sender {header.sender} is not the caller {authority}"
        )
    if header.recipient not in gw.settings.directory:
        raise PolicyRefusal(
            "submit.recipient", f"recipient {header.recipient} is not in authorities.yaml"
        )
    if header.legal_basis == LegalBasis.CONSENT and not header.consent_ref:
        raise PolicyRefusal("consent.reference", "basis CONSENT needs a consent reference")
    if header.legal_basis == LegalBasis.SAFEGUARDING and header.safeguarding is None:
        raise PolicyRefusal(
            "safeguarding.approval", "basis SAFEGUARDING needs a named approver and a reason"
        )
    if header.legal_basis == LegalBasis.NO_PERSONAL_DATA and getattr(env.body, "child", None):
        raise PolicyRefusal(
            RULE_NPD_CHILD,
            f"message {header.message_id}: basis NO_PERSONAL_DATA but the body carries a Child",
        )
    if gw.ledger.find(message_id=header.message_id, authority=authority, with_history=False):
        raise PolicyRefusal(
            "submit.duplicate-id", f"message id {header.message_id} was already used"
        )


def _issue_log_copies(
    gw: Gateway, conn: Connection, authority: str, env: Envelope
) -> list[NewMessage]:
    """A submitted issues-log entry (a service gap or a cross-border risk) is kept in
    the authority's own copy of the regional log and sent to every other authority,
    as the regional log is maintained by all the region's coordinators."""
    body = env.body
    assert isinstance(body, IssueLogEntry)
    if body.reported_by_la != authority:
        raise PolicyRefusal(
            RULE_ISSUE_REPORTER,
            f"entry {body.entry_id} says it was reported by {body.reported_by_la}, "
            f"but {authority} is submitting it",
        )
    store_issue(conn, authority, body, gw.clock(), None, env.header.message_id)
    copies = []
    for code in sorted(gw.settings.directory.authorities):
        if code in (authority, env.header.recipient):
            continue
        copy = new_envelope(
            gw.clock,
            sender=authority,
            recipient=code,
            body=body,
            correlation=env.header.correlation_id,
            legal_basis=LegalBasis.NO_PERSONAL_DATA,
            purpose=Purpose.COORDINATION,
        )
        copies.append(signed_message(gw, copy))
    return copies


def _check_policy(gw: Gateway, conn: Connection, authority: str, env: Envelope) -> list[NewMessage]:
    """The consent, plan, family and routing rules for an addressed envelope.

    Returns the withdrawal notices a submitted withdrawal causes.
    """
    policy = policy_of(gw.settings)
    header, body = env.header, env.body
    thread = cases.get(conn, authority, header.correlation_id)
    extra: list[NewMessage] = []
    child = getattr(body, "child", None)
    key = child_key(child) if child is not None else (thread.child_key if thread else None)
    if isinstance(body, IssueLogEntry):
        extra = _issue_log_copies(gw, conn, authority, env)
    if isinstance(body, ConsentChange) and key is not None:
        registered = consent_register.record(
            conn,
            authority=authority,
            child_key=key,
            case_ref=body.case_ref,
            consent=body.consent,
            action=body.action,
            source=consent_register.LOCAL,
            now=gw.clock(),
        )
        if registered.added and registered.newly_withdrawn:
            extra = _withdrawal_notices(gw, conn, authority, env, key, registered.after)
        elif registered.added:
            held.release_held(gw, conn, authority, key, registered.after)
    if (
        isinstance(body, Notification)
        and body.audience == Audience.FAMILY
        and thread is not None
        and thread.inform_family is False
    ):
        raise PolicyRefusal(
            RULE_FAMILY,
            "the significant-harm decision says the family must not be told; "
            "no family-facing notice may be generated for this case",
        )
    if isinstance(body, Notification) and thread is not None:
        _check_funding_route(body, header.recipient, thread)
    if isinstance(body, Assessment) and thread is not None:
        refusal = plan_change_refusal(
            f"case {body.case_ref}",
            thread.plan_digest,
            thread.plan_consent_ref,
            plan_digest(body),
            header.consent_ref,
        )
        if refusal is not None:
            raise refusal
    if header.legal_basis == LegalBasis.CONSENT and key is not None:
        consent = consent_register.effective(consent_register.entries(conn, authority, key))
        if consent.entry is None and isinstance(body, Assessment) and body.consent is not None:
            consent = consent_register.record(
                conn,
                authority=authority,
                child_key=key,
                case_ref=body.case_ref,
                consent=body.consent,
                action=consent_register.action_of(body.consent),
                source=consent_register.LOCAL,
                now=gw.clock(),
            ).after
        uncovered = sharing.covers(
            consent,
            policy,
            authority,
            header.recipient,
            header.purpose or Purpose.SHARE_CROSS_BORDER,
        )
        if uncovered is not None:
            raise PolicyRefusal(uncovered.rule, uncovered.reason)
    return extra


def _withdrawal_notices(
    gw: Gateway,
    conn: Connection,
    authority: str,
    env: Envelope,
    key: str,
    consent: consent_register.Effective,
) -> list[NewMessage]:
    policy = policy_of(gw.settings)
    body = env.body
    assert isinstance(body, ConsentChange)
    recipients = [
        r for r in disclosures.past_recipients(conn, authority, key) if r != env.header.recipient
    ]
    disclosures.stop_queued(
        gw.ledger,
        conn,
        authority,
        key,
        lambda r: sharing.covers(consent, policy, authority, r, Purpose.SHARE_CROSS_BORDER) is None,
    )
    made = []
    for recipient in recipients:
        notice = new_envelope(
            gw.clock,
            sender=authority,
            recipient=recipient,
            body=body,
            correlation=env.header.correlation_id,
            legal_basis=LegalBasis.CONSENT_WITHDRAWAL,
        )
        made.append(signed_message(gw, notice, case_ref=body.case_ref, child_key=key))
    return made


def _check_funding_route(body: Notification, recipient: str, thread: cases.CaseThread) -> None:
    """Funding requests go to the residence authority; BHLP problems to the initiator."""
    if (
        body.type == NotificationType.FUNDING_REQUEST
        and thread.residence_la
        and (recipient != thread.residence_la)
    ):
        raise PolicyRefusal(
            RULE_FUNDING_ROUTE,
            f"funding requests go to where the child lives ({thread.residence_la}), "
            f"not {recipient}",
        )
    if (
        body.type == NotificationType.FUNDING_PROBLEM
        and thread.initiating_la
        and (recipient != thread.initiating_la)
    ):
        raise PolicyRefusal(
            RULE_FUNDING_PROBLEM_ROUTE,
            f"budget-holding problems are reported to the initiating authority "
            f"({thread.initiating_la}), not {recipient}",
        )
