"""One converted local record: read what is known, decide (``policy.decision``),
and carry the decision out in the caller's transaction: the consent decision
recorded, every message signed (or kept held, or recorded refused), audited,
logged on the case thread; held copies released or superseded, queued sends
stopped, the thread and the issues log saved."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection

from adapters.base import Converted, Rejected
from gateway.cases import store as cases
from gateway.cases.identity import correlation_id
from gateway.context import Gateway
from gateway.crossborder import consent_store, issues_store
from gateway.crossborder.receive import index_child
from gateway.envelope.codec import envelope_to_bytes
from gateway.feature import ApplyContext
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import LegalBasis, MessageType, Notification
from gateway.outbox import digest, disclosure, safeguarding_override
from gateway.policy import rules
from gateway.policy.child import child_key
from gateway.policy.consent import LOCAL
from gateway.policy.decision import Known, RecordDecision, decide_record, reads_for
from gateway.services.outbound import held, knowledge
from gateway.services.outbound.outcomes import RecordOutcome


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


@dataclass
class Made:
    """What one record produced, for the caller to record and report."""

    messages: list[NewMessage] = field(default_factory=list)
    events: list[audit.AuditEvent] = field(default_factory=list)
    log: list[cases.NewLogLine] = field(default_factory=list)
    outcomes: list[RecordOutcome] = field(default_factory=list)
    notices: list[RecordOutcome] = field(default_factory=list)


def known_for(gw: Gateway, conn: Connection, authority: str, result: Converted) -> Known:
    """Everything the decision about this record needs, read once."""
    a = result.assessment
    key = child_key(a.child)
    thread_id = correlation_id(authority, a.case_ref)
    now = gw.clock()
    history = knowledge.consent_history(conn, authority, key)
    # The child's other records are read only where the decision can use them:
    # each read returned every earlier record about the child, so a register
    # with many records of one child cost more with every record (issue 14).
    reads = reads_for(history, result, now, authority, thread_id)
    return Known(
        authority=authority,
        directory=gw.settings.directory,
        policy=gw.settings.policy,
        now=now,
        consent_history=history,
        thread=cases.get(conn, authority, thread_id),
        sent_notices=knowledge.thread_notices(conn, authority, thread_id),
        agreements=cases.agreements_among(conn, authority, reads.agreements),
        known_issue_ids=knowledge.known_issue_ids(conn, authority, reads.issue_ids),
        past_recipients=knowledge.past_recipients(conn, authority, key) if reads.withdrawal else (),
        held=(
            knowledge.held_copies(conn, authority, key)
            if reads.all_held
            else knowledge.held_copies_of_case(conn, authority, key, a.case_ref)
        ),
        queued=knowledge.queued_copies(conn, authority, key) if reads.withdrawal else (),
        sent_content=knowledge.sent_content(conn, authority, a.case_ref),
        withdrawal_read=reads.withdrawal,
        all_held_read=reads.all_held,
        agreements_read=reads.agreements,
        issue_ids_read=reads.issue_ids,
    )


def converted(gw: Gateway, conn: Connection, authority: str, result: Converted) -> Made:
    """Decide about one record and carry the decision out (``Made`` is recorded by the caller)."""
    a = result.assessment
    thread_id = correlation_id(authority, a.case_ref)
    known = known_for(gw, conn, authority, result)
    decision = decide_record(known, result, thread_id)
    made = Made()
    if decision.stale is not None:
        reason = f"record {result.record}: {decision.stale}"
        message = NewMessage(
            message_id=str(uuid.uuid4()),
            direction=Direction.OUTBOUND,
            authority=authority,
            sender=authority,
            recipient=authority,
            message_type=MessageType.ASSESSMENT.value,
            correlation_id=thread_id,
            legal_basis=LegalBasis.CONSENT.value,
            statuses=((Status.ACCEPTED, None), (Status.REJECTED, reason)),
            case_ref=a.case_ref,
            child_key=child_key(a.child),
        )
        made.messages.append(message)
        made.outcomes.append(
            RecordOutcome(
                result.record, a.case_ref, Status.REJECTED, (message.message_id,), (), (reason,)
            )
        )
        return made
    key = child_key(a.child)
    now = known.now
    if decision.new_consent is not None:
        new = decision.new_consent
        consent_store.add(
            conn,
            authority=authority,
            child_key=key,
            case_ref=new.case_ref,
            consent=new.consent,
            action=new.action,
            source=LOCAL,
            now=now,
        )
    _materialise_all(gw, conn, authority, thread_id, result, key, decision, made)
    held.release(gw, conn, authority, key, decision.releases)
    gw.ledger.stop_queued(
        [q.pk for q in decision.stops],
        "consent.withdrawn-before-sending: consent was withdrawn before the message was sent",
        conn,
    )
    for entry in decision.issues:
        issues_store.store(conn, authority, entry, now)
    assert decision.thread is not None
    cases.save(conn, decision.thread, now, new=known.thread is None)
    made.log.extend(
        cases.NewLogLine(
            authority, thread_id, now, line.kind, line.counterparty, detail=line.detail
        )
        for line in decision.log
    )
    cases.log_all(conn, made.log)  # the items' lines first, then the decision's, as before
    index_child(ApplyContext(conn, now, gw), authority, thread_id, a.child)
    return made


def _materialise_all(
    gw: Gateway,
    conn: Connection,
    authority: str,
    thread_id: str,
    result: Converted,
    key: str,
    decision: RecordDecision,
    made: Made,
) -> None:
    """Sign or keep every planned message; supersede held copies; report the outcomes."""
    a = result.assessment
    now = gw.clock()
    ids_at: dict[int, str] = {}
    record_ids: list[str] = []
    record_to: list[str] = []
    record_reasons: list[str] = []
    notice_ids: dict[bool, list[str]] = {True: [], False: []}
    notice_to: list[str] = []
    notice_reasons: list[str] = []
    held_any = False
    for index, item in enumerate(decision.items):
        earlier = decision.already_sent.get(index)
        if earlier is not None:
            ids_at[index] = earlier
            record_ids.append(earlier)
            record_to.append(item.recipient)
            record_reasons.append(
                f"identical to {earlier}, already sent to {item.recipient}; not sent again"
            )
            continue
        message = _materialise(gw, authority, thread_id, a.case_ref, key, item)
        ids_at[index] = message.message_id
        made.messages.append(message)
        if item.sendable:
            if item.legal_basis != LegalBasis.NO_PERSONAL_DATA:
                made.events.append(disclosure(message))
            if item.safeguarding is not None:
                made.events.append(safeguarding_override(message, item.safeguarding))
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
        made.log.append(_log_item(authority, thread_id, now, item, message))
    for copy, index in decision.superseded:
        gw.ledger.transition_from(
            [copy.pk],
            [Status.HELD_LOCAL],
            Status.REJECTED,
            f"superseded by {ids_at[index]}: a later export of record {result.record} "
            f"replaces this held copy for {copy.recipient}",
            conn,
        )
    status = Status.SIGNED if record_to else Status.HELD_LOCAL if held_any else Status.REJECTED
    made.outcomes.append(
        RecordOutcome(
            result.record,
            a.case_ref,
            status,
            tuple(record_ids),
            tuple(dict.fromkeys(record_to)),
            tuple(record_reasons),
        )
    )
    for sent, ids in notice_ids.items():
        if ids:
            made.notices.append(
                RecordOutcome(
                    f"{result.record}:notices",
                    a.case_ref,
                    Status.SIGNED if sent else Status.REJECTED,
                    tuple(ids),
                    tuple(dict.fromkeys(notice_to)) if sent else (),
                    () if sent else tuple(notice_reasons),
                    kind="notices",
                )
            )


def _materialise(
    gw: Gateway, authority: str, thread: str, case: str, key: str, item: rules.Planned
) -> NewMessage:
    personal = item.legal_basis != LegalBasis.NO_PERSONAL_DATA
    message_type = MessageType(type(item.body).__name__)
    if item.sendable:
        env = gw.outbox.envelope(
            sender=authority,
            recipient=item.recipient,
            body=item.body,
            correlation=thread,
            legal_basis=item.legal_basis,
            purpose=item.purpose,
            consent_ref=item.consent_ref,
            safeguarding=item.safeguarding,
        )
        return gw.outbox.sign(env, case_ref=case, child_key=key if personal else None)
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
    local = gw.outbox.envelope(
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


def _log_item(
    authority: str,
    thread: str,
    now: datetime,
    item: rules.Planned,
    m: NewMessage,
) -> cases.NewLogLine:
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
    return cases.NewLogLine(
        authority,
        thread,
        now,
        kind_of,
        counterparty=item.recipient,
        message_id=m.message_id,
        notice_key=item.notice_key if item.sendable else None,
        detail=detail,
    )
