"""Coordinator actions outside a local export: existence queries, evaluations,
out-of-area service agreements. Each send is judged against the consent
register at the moment it is made, signed and recorded; a refusal is
recorded as REJECTED with its rule and raised to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import Connection, exists, func, select

from gateway.cases import store as cases
from gateway.cases.identity import correlation_id
from gateway.context import Gateway
from gateway.crossborder import consent_store, existence_asked, existence_held, receive
from gateway.errors import ConflictError, NotFoundError, PolicyRefusal
from gateway.ledger import audit, locks
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import EXISTENCE_QUERIES, messages
from gateway.lifecycle.tables import recalls
from gateway.model import (
    Body,
    Child,
    Evaluation,
    LegalBasis,
    MessageType,
    Purpose,
    Safeguarding,
)
from gateway.outbox import disclosure, safeguarding_override
from gateway.policy import consent as consent_rules
from gateway.policy import existence, sharing
from gateway.policy.child import child_key
from gateway.services.outbound.knowledge import CARRIED

RULE_EXISTENCE_CONSENT = "consent.existence-check"
RULE_EVALUATION_LEAD = "evaluation.not-lead-professional"
RULE_SAFEGUARDING_APPROVER = "safeguarding.approver"
RULE_EXISTENCE_RATE = "existence.rate"


@dataclass(frozen=True)
class Sent:
    message_id: str
    recipient: str
    status: Status
    reason: str | None = None


def _refused(
    gw: Gateway,
    authority: str,
    recipient: str,
    mtype: MessageType,
    thread: str,
    basis: LegalBasis,
    purpose: Purpose,
    refusal: sharing.Refusal | PolicyRefusal,
    case_ref: str | None = None,
    noted: Callable[[Connection, str], None] | None = None,
) -> Sent:
    """Record a send refused here; ``noted``: run in the same transaction, with its id."""
    message_id = str(uuid.uuid4())
    with gw.ledger.transaction() as conn:
        gw.ledger.record(
            [
                NewMessage(
                    message_id=message_id,
                    direction=Direction.OUTBOUND,
                    authority=authority,
                    sender=authority,
                    recipient=recipient,
                    message_type=mtype.value,
                    correlation_id=thread,
                    legal_basis=basis.value,
                    purpose=purpose.value,
                    statuses=((Status.ACCEPTED, None), (Status.REJECTED, str(refusal))),
                    case_ref=case_ref,
                )
            ],
            conn,
        )
        if noted is not None:
            noted(conn, message_id)
    return Sent(message_id, recipient, Status.REJECTED, str(refusal))


def _disclose(
    gw: Gateway,
    message: NewMessage,
    safeguarding: Safeguarding | None,
    within_rate: Callable[[Connection], PolicyRefusal | None] | None = None,
    *,
    once: bool = False,
    noted: Callable[[Connection], None] | None = None,
) -> Sent | None:
    """Queue ``message`` with its audit entries; ``within_rate``: checked again in the
    same transaction, under the authority's existence-rate lock, and raised (nothing
    queued) if the message would now go past the rate. ``once``: not queued if the
    same content already went to its recipient on its case thread (checked under the
    thread's lock); the earlier message is returned instead. ``noted``: run in the
    same transaction once it is queued."""
    events = []
    if message.legal_basis != LegalBasis.NO_PERSONAL_DATA.value:
        events.append(disclosure(message))
    if safeguarding is not None:
        events.append(safeguarding_override(message, safeguarding))
    with gw.ledger.transaction() as conn:
        if once:
            locks.xact_lock(conn, [locks.thread(message.authority, message.correlation_id)])
            earlier = _sent_before(conn, message)
            if earlier is not None:
                return earlier
        if within_rate is not None:
            locks.xact_lock(conn, [f"existence-rate:{message.authority}"])
            refused = within_rate(conn)
            if refused is not None:
                raise refused
        gw.outbox.queue(conn, [message], events)
        if noted is not None:
            noted(conn)
    return None


def _sent_before(conn: Connection, message: NewMessage) -> Sent | None:
    """The message of ``message``'s type and content already sent to its recipient on
    its case thread and not recalled, or None.

    The same evaluation sent twice (a double click, a retry after a lost answer, two
    people at once) went twice to every coordinator: a second disclosure of the
    child's data, which the receiving gateways then recorded as a duplicate.
    """
    row = conn.execute(
        select(messages.c.message_id, messages.c.status)
        .where(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.authority == message.authority,
            messages.c.recipient == message.recipient,
            messages.c.correlation_id == message.correlation_id,
            messages.c.message_type == message.message_type,
            messages.c.content_digest == message.content_digest,
            messages.c.status.in_(CARRIED),
            ~exists().where(
                recalls.c.authority == message.authority,
                recalls.c.original_id == messages.c.message_id,
                recalls.c.kind == "RECALL",
            ),
        )
        .order_by(messages.c.id)
    ).first()
    if row is None:
        return None
    return Sent(
        row.message_id,
        message.recipient,
        Status(row.status),
        f"the same {message.message_type} was already sent to {message.recipient}",
    )


def ask_existence(
    gw: Gateway,
    authority: str,
    recipient: str,
    child: Child,
    safeguarding: Safeguarding | None = None,
) -> Sent:
    """Ask ``recipient`` whether it holds a CAF for ``child`` (keyed hashes only)."""
    gw.signer(authority)
    if recipient not in gw.settings.directory or recipient == authority:
        raise PolicyRefusal(
            "submit.recipient", f"{recipient} is not another authority in authorities.yaml"
        )
    policy = gw.settings.policy
    key = existence.read_key(policy.existence_key_file)
    thread = correlation_id(authority, f"existence:{uuid.uuid4()}")
    with gw.ledger.transaction() as conn:
        consent = consent_rules.effective(consent_store.entries(conn, authority, child_key(child)))
    # The query's row has no child key: it carries keyed hashes, not the child's identity
    # (a consent withdrawal must not send that to the asked authority). The query, or a
    # refused attempt (whose reason may quote what was typed), is noted by the child's
    # keys instead, for an erasure or a report about the child.
    about = existence_asked.keys_of(child)

    def noted(conn: Connection, message_id: str) -> None:
        existence_asked.note(conn, authority, message_id, about, gw.ledger.clock())

    def record_refused(basis: LegalBasis, refusal: sharing.Refusal | PolicyRefusal) -> None:
        _refused(
            gw,
            authority,
            recipient,
            MessageType.NOTIFICATION,
            thread,
            basis,
            Purpose.EXISTENCE_CHECK,
            refusal,
            noted=noted,
        )

    if safeguarding is not None:
        refused = _safeguarding_refusal(gw, authority, recipient, safeguarding)
        if refused is not None:
            record_refused(LegalBasis.SAFEGUARDING, refused)
            raise refused
        listed = policy.approver(authority, safeguarding.approver)
        assert listed is not None
        # As the directory names them, with their role: what both audit trails record.
        safeguarding = replace(safeguarding, approver=listed.name, approver_role=listed.role)
    if safeguarding is None:
        refusal = sharing.covers(consent, policy, authority, recipient, Purpose.EXISTENCE_CHECK)
        if refusal is not None:
            refusal = sharing.Refusal(RULE_EXISTENCE_CONSENT, refusal.reason, recipient)
            record_refused(LegalBasis.CONSENT, refusal)
            raise PolicyRefusal(refusal.rule, refusal.reason)
        basis, consent_ref = LegalBasis.CONSENT, consent.reference(authority)
    else:
        basis, consent_ref = LegalBasis.SAFEGUARDING, None
    env = gw.outbox.envelope(
        sender=authority,
        recipient=recipient,
        body=existence.query_body(existence.keyed_hashes(key, child)),
        correlation=thread,
        legal_basis=basis,
        purpose=Purpose.EXISTENCE_CHECK,
        consent_ref=consent_ref,
        safeguarding=safeguarding,
    )
    message = gw.outbox.sign(env)
    try:
        # Counted where it is queued (under the authority's existence-rate lock): two
        # requests at once both passed an earlier count, and both were sent past it.
        _disclose(
            gw,
            message,
            safeguarding,
            lambda conn: _over_rate(gw, conn, authority, recipient, basis),
            noted=lambda conn: noted(conn, message.message_id),
        )
    except PolicyRefusal as over:
        record_refused(basis, over)
        raise
    return Sent(message.message_id, recipient, Status.SIGNED)


def _safeguarding_refusal(
    gw: Gateway, authority: str, recipient: str, safeguarding: Safeguarding
) -> PolicyRefusal | None:
    """Why a safeguarding-basis existence query may not be asked, or None.

    The approver must be in the authority's own directory of approvers
    (``policy.safeguarding_approvers``); a self-declared one ("Anyone At All",
    "curious") got a held, unshared case's existence and its coordinator's
    contact (issue 13, item 6). At most ``existence_safeguarding_per_day`` are
    asked per 24 hours.
    """
    policy = gw.settings.policy
    if policy.approver(authority, safeguarding.approver) is None:
        return PolicyRefusal(
            RULE_SAFEGUARDING_APPROVER,
            f"{safeguarding.approver!r} is not a safeguarding approver of {authority} "
            f"(reason given: {safeguarding.reason!r}); approvers come from the list "
            f"{authority} keeps in policy.yaml (safeguarding_approvers.{authority})",
        )
    with gw.ledger.transaction() as conn:
        return _over_rate(gw, conn, authority, recipient, LegalBasis.SAFEGUARDING)


def _over_rate(
    gw: Gateway, conn: Connection, authority: str, recipient: str, basis: LegalBasis
) -> PolicyRefusal | None:
    """The refusal of one more existence query on ``basis``, or None: at most
    ``existence_safeguarding_per_day`` safeguarding-basis queries per 24 hours, and
    ``existence_consent_per_day`` consent-basis ones to each recipient, which the asked
    gateway holds every requester to (its answer past them is a quarantine: said
    here, at once, to this authority's own users)."""
    policy = gw.settings.policy
    since = gw.clock() - timedelta(days=1)
    conditions = [
        messages.c.direction == Direction.OUTBOUND.value,
        messages.c.authority == authority,
        messages.c.sender == authority,  # as every outbound row: the index names it
        EXISTENCE_QUERIES,  # as the index's condition is written: searched by it
        messages.c.legal_basis == basis.value,
        messages.c.status != Status.REJECTED.value,
        messages.c.created_at >= since,
    ]
    most, setting = policy.existence_budget(basis)
    to = ""
    if basis != LegalBasis.SAFEGUARDING:  # the asked gateway counts each requester's own
        conditions.append(messages.c.recipient == recipient)
        to = f" to {recipient}"
    asked = conn.execute(select(func.count()).select_from(messages).where(*conditions)).scalar_one()
    if asked >= most:
        return PolicyRefusal(
            RULE_EXISTENCE_RATE,
            f"{authority} has asked {asked} {basis.value.lower()}-basis existence queries{to} "
            f"in 24 hours, the limit (policy.{setting} = {most}); ask "
            f"{recipient}'s coordinator directly",
        )
    return None


def send_evaluation(
    gw: Gateway, authority: str, thread_id: str, evaluation: Evaluation
) -> list[Sent]:
    """The lead professional's evaluation, to the local coordinator and every authority involved."""
    gw.signer(authority)
    policy = gw.settings.policy
    with gw.ledger.transaction() as conn:
        thread = cases.get(conn, authority, thread_id)
        if thread is None:
            raise NotFoundError(f"case {thread_id} not found")
        consent = consent_rules.basis_for(
            consent_store.entries(conn, authority, thread.child_key or ""),
            thread.owner,
            authority,
        )
    if thread.governing_la and thread.governing_la != authority:
        raise PolicyRefusal(
            RULE_EVALUATION_LEAD,
            f"the evaluation is sent by the lead professional's authority ({thread.governing_la})",
        )
    recipients = [authority, *sorted(p for p in thread.parties if p != authority)]
    sent = []
    for recipient in recipients:
        refusal = sharing.covers(consent, policy, authority, recipient, Purpose.EVALUATION)
        if refusal is not None:
            sent.append(
                _refused(
                    gw,
                    authority,
                    recipient,
                    MessageType.EVALUATION,
                    thread_id,
                    LegalBasis.CONSENT,
                    Purpose.EVALUATION,
                    refusal,
                    thread.case_ref,
                )
            )
            continue
        body: Body = evaluation
        env = gw.outbox.envelope(
            sender=authority,
            recipient=recipient,
            body=body,
            correlation=thread_id,
            legal_basis=LegalBasis.CONSENT,
            purpose=Purpose.EVALUATION,
            consent_ref=consent.reference(authority),
        )
        message = gw.outbox.sign(env, case_ref=thread.case_ref, child_key=thread.child_key)
        earlier = _disclose(gw, message, None, once=True)
        sent.append(earlier or Sent(message.message_id, recipient, Status.SIGNED))
    return sent


def record_agreement(
    gw: Gateway,
    authority: str,
    practitioner: str,
    delivery_la: str,
    line_manager: str,
    coordinator: str,
) -> None:
    """Record a prior agreement to deliver a service outside the practitioner's area."""
    if delivery_la not in gw.settings.directory:
        raise PolicyRefusal("submit.recipient", f"{delivery_la} is not in authorities.yaml")
    if not (practitioner.strip() and line_manager.strip() and coordinator.strip()):
        raise PolicyRefusal(
            "agreement.parties",
            "a prior agreement names the practitioner, their line manager "
            "and the local CAF coordinator",
        )
    with gw.ledger.transaction() as conn:
        cases.add_agreement(
            conn, authority, practitioner, delivery_la, line_manager, coordinator, gw.clock()
        )


def held_existence_queries(gw: Gateway, authority: str) -> list[existence_held.HeldQuery]:
    """Safeguarding-basis existence queries waiting for ``authority``'s coordinator."""
    with gw.ledger.transaction() as conn:
        return existence_held.waiting(conn, authority)


def decide_existence_query(
    gw: Gateway,
    authority: str,
    message_id: str,
    approve: bool,
    by: str,
    actor: str | None = None,
) -> existence_held.Decided:
    """The coordinator's decision on a held query: approved, it is answered as usual;
    refused, nothing is sent. Either way audited naming ``actor`` (the name ``by``
    gave and the API key that made the request; ``by`` alone when None, as from
    the CLI, whose user is that person).

    Decided once: the same decision again (a second click, a colleague a second
    earlier) answers with the first, who made it and when, and does nothing; the
    other decision is a ``ConflictError`` naming them. NotFoundError if
    ``authority`` was never asked it.
    """
    if not by.strip():
        raise PolicyRefusal("existence.decided-by", "a decision names who made it")
    decision = "APPROVED" if approve else "REFUSED"
    with gw.ledger.transaction() as conn:
        decided = existence_held.decide(conn, authority, message_id, decision, by, gw.clock())
        if decided is None:
            raise NotFoundError(f"no existence query {message_id} was held for {authority}")
        if decided.already:
            q = decided.query
            if q.decision != decision:
                # The other way: say so (409), never an answer that looks like success.
                when = q.decided_at.isoformat(timespec="seconds") if q.decided_at else "earlier"
                raise ConflictError(
                    f"existence query {message_id} was already {(q.decision or '').lower()} "
                    f"by {q.decided_by} at {when}: it cannot be {decision.lower()} now"
                )
            return decided
        query = decided.query
        if approve:
            receive.answer_existence(
                conn,
                gw.outbox,
                gw.ledger,
                gw.settings,
                query,
                LegalBasis.SAFEGUARDING.value,
                approved_by=actor or by,
            )
        else:
            audit.append(
                gw.ledger,
                [
                    audit.AuditEvent(
                        actor=(actor or by)[:128],
                        action="EXISTENCE_QUERY_REFUSED",
                        authority=authority,
                        counterparty=query.requester,
                        legal_basis=LegalBasis.SAFEGUARDING.value,
                        message_id=query.message_id,
                        digest=query.digest,
                        detail=(
                            f"not answered; asked by {query.approver} at {query.requester}: "
                            f"{query.reason}"
                        )[:500],
                    )
                ],
                conn,
            )
    return decided
