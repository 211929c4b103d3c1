"""The cross-border policy feature: what received messages do to policy state.

Registered appliers (run inside the inbound recording transaction):
- Assessment: the case thread (parties, governing authority, lead
  professionals) and "it is the child's plan": a changed plan needs a
  consent for the change; the existence index.
- ConsentChange: the consent register; a withdrawal that no longer covers
  this authority restricts the child's received records.
- Notification: the case log; existence queries are answered here; a
  family notice for a case where the family must not be told is refused.
- Evaluation: the case log.
- IssueLogEntry: this authority's copy of the regional issues log.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, update

import gateway.cases.tables  # noqa: F401 - the case tables join the ledger metadata
from gateway.cases import store as cases
from gateway.context import Gateway
from gateway.errors import ConfigError, PolicyRefusal
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.model import (
    Assessment,
    Audience,
    ConsentAction,
    ConsentChange,
    Envelope,
    Evaluation,
    FlagCode,
    IssueLogEntry,
    LegalBasis,
    MessageType,
    Notification,
    NotificationType,
    Purpose,
)
from gateway.policy import consent_register, existence, issues_log, sharing
from gateway.policy.child import child_key
from gateway.policy.config import policy_of
from gateway.policy.governing import governing, involved_las, plan_digest, residence_la
from gateway.policy.notifications import RULE_FAMILY
from gateway.policy.plan import plan_change_refusal
from gateway.services import apply
from gateway.services.signing import new_envelope, signed_message

RULE_EXISTENCE_BASIS = "existence.basis"


def on_assessment(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, Assessment)
    header = env.header
    thread = cases.get(conn, authority, header.correlation_id)
    digest_now = plan_digest(body)
    refusal = plan_change_refusal(
        f"message {header.message_id}: case {body.case_ref}",
        thread.plan_digest if thread else None,
        thread.plan_consent_ref if thread else None,
        digest_now,
        header.consent_ref,
    )
    if refusal is not None:
        raise refusal
    key = child_key(body.child)
    now = gw.clock()
    if body.consent is not None:
        consent_register.record(
            conn,
            authority=authority,
            child_key=key,
            case_ref=body.case_ref,
            consent=body.consent,
            action=consent_register.action_of(body.consent),
            source=header.sender,
            now=now,
            message_id=header.message_id,
        )
    gov = governing(body, header.sender)
    harm = next((f for f in body.flags if f.code == FlagCode.SIGNIFICANT_HARM), None)
    if thread is not None and thread.governing_la and thread.governing_la != gov.la:
        cases.log(
            conn,
            authority,
            header.correlation_id,
            now,
            "GOVERNING_AUTHORITY_CHANGED",
            counterparty=gov.la,
            detail=f"from {thread.governing_la} to {gov.la}",
        )
    leads = tuple(
        cases.LeadEntry(
            p.practitioner.name,
            p.practitioner.la_code,
            p.from_date.isoformat() if p.from_date else None,
            body.child_views,
        )
        for p in body.lead_professionals
    )
    parties = set(involved_las(body, (), header.sender)) | {header.sender, authority}
    cases.save(
        conn,
        cases.CaseThread(
            authority=authority,
            correlation_id=header.correlation_id,
            case_ref=body.case_ref,
            child_key=key,
            initiating_la=gov.initiating_la,
            residence_la=residence_la(body),
            governing_la=gov.la,
            governing_since=gov.since.isoformat() if gov.since else None,
            inform_family=(harm.inform_family is not False)
            if harm
            else (thread.inform_family if thread else None),
            plan_digest=digest_now,
            plan_consent_ref=header.consent_ref,
            parties=tuple(sorted(parties | set(thread.parties if thread else ()))),
            leads=leads,
        ),
        now,
    )
    cases.log(
        conn,
        authority,
        header.correlation_id,
        now,
        "RECEIVED:Assessment",
        counterparty=header.sender,
        message_id=header.message_id,
        detail=header.legal_basis.value,
    )
    _index(gw, conn, authority, header.correlation_id, body)


def _index(gw: Gateway, conn: Connection, authority: str, thread: str, body: Assessment) -> None:
    path = policy_of(gw.settings).existence_key_file
    if path.exists():
        try:
            key = existence.read_key(path)
        except ConfigError:
            return
        existence.index_child(conn, authority, thread, existence.keyed_hashes(key, body.child))


def on_consent_change(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, ConsentChange)
    header = env.header
    key = child_key(body.child)
    now = gw.clock()
    registered = consent_register.record(
        conn,
        authority=authority,
        child_key=key,
        case_ref=body.case_ref,
        consent=body.consent,
        action=body.action,
        source=header.sender,
        now=now,
        message_id=header.message_id,
    )
    withdrawal = header.legal_basis == LegalBasis.CONSENT_WITHDRAWAL or body.action in (
        ConsentAction.WITHDRAWN,
        ConsentAction.REFUSED,
    )
    if not withdrawal:
        return
    from_sender = (
        consent_register.Effective(
            next(
                e
                for e in reversed(consent_register.entries(conn, authority, key))
                if e.source == header.sender
            )
        )
        if registered.added
        else registered.after
    )
    still = sharing.covers(
        from_sender, policy_of(gw.settings), header.sender, authority, Purpose.SHARE_CROSS_BORDER
    )
    if still is None:
        detail = "partial withdrawal; sharing with this authority is still covered"
    else:
        conn.execute(
            update(messages)
            .where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == authority,
                messages.c.child_key == key,
            )
            .values(restricted=True)
        )
        detail = f"records restricted: {still.rule}"
    cases.log(
        conn,
        authority,
        header.correlation_id,
        now,
        "CONSENT_WITHDRAWN",
        counterparty=header.sender,
        message_id=header.message_id,
        detail=detail,
    )


def on_notification(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, Notification)
    header = env.header
    now = gw.clock()
    thread = cases.get(conn, authority, header.correlation_id)
    if body.audience == Audience.FAMILY and thread is not None and thread.inform_family is False:
        raise PolicyRefusal(
            RULE_FAMILY,
            f"message {header.message_id}: the family must not be told about this case "
            "(significant-harm decision); no family-facing notice is generated",
        )
    if body.type == NotificationType.SIGNIFICANT_HARM_REFERRAL:
        _remember_family_decision(conn, authority, env, thread, now)
    if body.type == NotificationType.EXISTENCE_QUERY:
        _answer_existence(gw, authority, env, conn)
    detail = body.summary
    if body.type == NotificationType.EXISTENCE_ANSWER:
        detail = "; ".join(f"{d.name}={d.value}" for d in body.details)
    if body.type == NotificationType.GOVERNING_AUTHORITY_CHANGED and thread is not None:
        to_la = next((d.value for d in body.details if d.name == "to_la"), None)
        if to_la and to_la != thread.governing_la:
            cases.save(conn, replace(thread, governing_la=to_la), now)
            cases.log(
                conn,
                authority,
                header.correlation_id,
                now,
                "GOVERNING_AUTHORITY_CHANGED",
                counterparty=to_la,
                detail=f"from {thread.governing_la} to {to_la}",
            )
    cases.log(
        conn,
        authority,
        header.correlation_id,
        now,
        f"NOTICE_RECEIVED:{body.type.value}",
        counterparty=header.sender,
        message_id=header.in_reply_to
        if body.type == NotificationType.EXISTENCE_ANSWER
        else header.message_id,
        detail=detail,
    )


def _remember_family_decision(
    conn: Connection, authority: str, env: Envelope, thread: cases.CaseThread | None, now: datetime
) -> None:
    """A referral says whether the family may be told; every later notice respects it."""
    assert isinstance(env.body, Notification)
    inform = next((d.value for d in env.body.details if d.name == "inform_family"), "true")
    base = thread or cases.CaseThread(
        authority=authority,
        correlation_id=env.header.correlation_id,
        case_ref=env.body.case_ref,
        child_key=child_key(env.body.child) if env.body.child else None,
        initiating_la=env.header.sender,
        parties=(env.header.sender, authority),
    )
    cases.save(conn, replace(base, inform_family=inform != "false"), now)


def _answer_existence(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    header = env.header
    assert isinstance(env.body, Notification)
    if header.legal_basis not in (LegalBasis.CONSENT, LegalBasis.SAFEGUARDING):
        raise PolicyRefusal(
            RULE_EXISTENCE_BASIS,
            f"message {header.message_id}: an existence query needs consent for the check "
            "or the safeguarding basis",
        )
    match = existence.holds(conn, authority, existence.hashes_in(env.body))
    coordinator = gw.settings.directory.get(authority).coordinator if match else None
    answer = new_envelope(
        gw.clock,
        sender=authority,
        recipient=header.sender,
        body=existence.answer_body(match, coordinator),
        correlation=header.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=header.message_id,
    )
    gw.ledger.record([signed_message(gw, answer)], conn)


def on_evaluation(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, Evaluation)
    views = len(body.practitioner_views)
    cases.log(
        conn,
        authority,
        env.header.correlation_id,
        gw.clock(),
        "EVALUATION_RECEIVED",
        counterparty=env.header.sender,
        message_id=env.header.message_id,
        detail=f"child views {'recorded' if body.child_views else 'missing'}; family views "
        f"{'recorded' if body.family_views else 'missing'}; {views} practitioner views; "
        f"cross-border impact: {body.cross_border_impact or 'not stated'}",
    )


def on_issue(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, IssueLogEntry)
    issues_log.store(conn, authority, body, gw.clock(), env.header.sender, env.header.message_id)


apply.register(MessageType.ASSESSMENT, on_assessment)
apply.register(MessageType.CONSENT_CHANGE, on_consent_change)
apply.register(MessageType.NOTIFICATION, on_notification)
apply.register(MessageType.EVALUATION, on_evaluation)
apply.register(MessageType.ISSUE_LOG_ENTRY, on_issue)
