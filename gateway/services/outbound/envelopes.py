"""One canonical envelope from an authority's own local system: read what is
known, decide (``policy.submission``), then sign, record and audit it with
whatever it causes (issues-log copies, withdrawal notices, released held
copies, stopped sends). A refusal is recorded REJECTED with its rule and
raised to the caller."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection

from gateway.cases import store as cases
from gateway.cases.identity import correlation_id, threads_for_own_message
from gateway.context import Gateway
from gateway.crossborder import consent_store, issues_store
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import PolicyRefusal
from gateway.ledger import locks
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Assessment,
    ConsentChange,
    Envelope,
    IssueLogEntry,
    LegalBasis,
    Purpose,
)
from gateway.outbox import disclosure, safeguarding_override
from gateway.policy.child import child_key
from gateway.policy.consent import LOCAL
from gateway.policy.governing import plan_digest
from gateway.policy.submission import (
    EnvelopeDecision,
    Sending,
    decide_envelope,
    needs_child_history,
)
from gateway.services.outbound import held, knowledge
from gateway.services.outbound.outcomes import RecordOutcome


def submit_envelope(gw: Gateway, authority: str, data: bytes) -> RecordOutcome:
    """Accept a canonical XML envelope written by ``authority``'s own system."""
    limits = gw.settings.limits
    root = xmlsafe.parse(data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    gw.schema.validate(root)
    env = element_to_envelope(root)
    return accept_envelope(gw, authority, env)


def sending(gw: Gateway, conn: Connection, authority: str, env: Envelope) -> Sending:
    """What ``authority`` knows that bears on sending ``env``, read once."""
    case_ref = getattr(env.body, "case_ref", None)
    threads = tuple(threads_for_own_message(conn, authority, env.header.correlation_id, case_ref))
    child = getattr(env.body, "child", None)
    key = (
        child_key(child)
        if child is not None
        else next((t.child_key for t in threads if t.child_key), None)
    )
    if key is None:
        return Sending(authority, gw.settings.directory, gw.settings.policy, gw.clock(), threads)
    known = Sending(
        authority=authority,
        directory=gw.settings.directory,
        policy=gw.settings.policy,
        now=gw.clock(),
        threads=threads,
        consent_history=knowledge.consent_history(conn, authority, key),
    )
    if not needs_child_history(env):
        # Every earlier message about the child, read for nothing (issue 14).
        return replace(known, child_history_read=False)
    return replace(
        known,
        past_recipients=knowledge.past_recipients(conn, authority, key),
        held=knowledge.held_copies(conn, authority, key),
        queued=knowledge.queued_copies(conn, authority, key),
    )


def accept_envelope(gw: Gateway, authority: str, env: Envelope) -> RecordOutcome:
    """Apply policy to an addressed envelope from ``authority``; sign and queue it."""
    header = env.header
    case_ref = getattr(env.body, "case_ref", None)
    threads = {header.correlation_id, *([correlation_id(authority, case_ref)] if case_ref else [])}
    try:
        with gw.ledger.transaction() as conn:
            # The threads it may name, and its id, locked before anything is read: a
            # second submission of the same id (a retried request) then finds the
            # first, and the decision is not taken on a thread changed meanwhile.
            locks.xact_lock(
                conn,
                [f"outbound:{authority}:{header.message_id}"]
                + [locks.thread(authority, t) for t in sorted(threads)],
            )
            if knowledge.id_used(conn, authority, header.message_id):
                raise PolicyRefusal(
                    "submit.duplicate-id", f"message id {header.message_id} was already used"
                )
            known = sending(gw, conn, authority, env)
            decision = decide_envelope(known, env)
            extra = _carry_out(gw, conn, authority, env, known, decision)
    except PolicyRefusal as refusal:
        _record_refusal(gw, authority, env, refusal)
        raise
    return RecordOutcome(
        header.message_id,
        getattr(env.body, "case_ref", None),
        Status.SIGNED,
        (header.message_id, *(m.message_id for m in extra)),
        (header.recipient, *(m.recipient for m in extra)),
    )


def _carry_out(
    gw: Gateway,
    conn: Connection,
    authority: str,
    env: Envelope,
    known: Sending,
    decision: EnvelopeDecision,
) -> list[NewMessage]:
    header, body = env.header, env.body
    now = known.now
    child = getattr(body, "child", None)
    key = (
        child_key(child)
        if child is not None
        else next((t.child_key for t in known.threads if t.child_key), None)
    )
    personal = header.legal_basis != LegalBasis.NO_PERSONAL_DATA
    case_ref = getattr(body, "case_ref", None)
    if decision.new_consent is not None and key is not None:
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
    message = gw.outbox.sign(
        env, case_ref=case_ref, child_key=key if child is not None and personal else None
    )
    extra: list[NewMessage] = []
    if decision.store_issue:
        assert isinstance(body, IssueLogEntry)
        issues_store.store(conn, authority, body, now, None, header.message_id)
        for code in decision.issue_copies_to:
            copy = gw.outbox.envelope(
                sender=authority,
                recipient=code,
                body=body,
                correlation=header.correlation_id,
                legal_basis=LegalBasis.NO_PERSONAL_DATA,
                purpose=Purpose.COORDINATION,
            )
            extra.append(gw.outbox.sign(copy))
    if isinstance(body, ConsentChange) and key is not None:
        for recipient in decision.withdrawal_to:
            notice = gw.outbox.envelope(
                sender=authority,
                recipient=recipient,
                body=body,
                correlation=header.correlation_id,
                legal_basis=LegalBasis.CONSENT_WITHDRAWAL,
            )
            extra.append(gw.outbox.sign(notice, case_ref=body.case_ref, child_key=key))
        gw.ledger.stop_queued(
            [q.pk for q in decision.stops],
            "consent.withdrawn-before-sending: consent was withdrawn before the message was sent",
            conn,
        )
        held.release(gw, conn, authority, key, decision.releases)
    events = [disclosure(message)] if personal else []
    if header.legal_basis == LegalBasis.SAFEGUARDING and header.safeguarding:
        events.append(safeguarding_override(message, header.safeguarding))
    events.extend(
        disclosure(m) for m in extra if m.legal_basis != LegalBasis.NO_PERSONAL_DATA.value
    )
    gw.outbox.queue(conn, [message, *extra], events)
    if decision.plan_of is not None and isinstance(body, Assessment):
        cases.save(
            conn,
            replace(
                decision.plan_of,
                plan_digest=plan_digest(body),
                plan_consent_ref=header.consent_ref,
            ),
            now,
        )
    cases.log(
        conn,
        authority,
        header.correlation_id,
        now,
        f"SENT:{header.message_type.value}",
        counterparty=header.recipient,
        message_id=header.message_id,
        detail=header.legal_basis.value,
    )
    return extra


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
