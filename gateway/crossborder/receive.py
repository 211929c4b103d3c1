"""What received messages do to the receiver's case threads and registers.

Every applier first finds the case the message is about
(``cases.identity.place_received``: a message may name only its sender's
own cases or a case whose owner made it a party) and judges the change
against ``policy.sovereignty`` (reading only; a refusal names its rule and
the message is quarantined with nothing changed); only then does its effect
write. A received message is its sender's statement: consent it carries is
recorded as that sender's, never as the receiver's own decision.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, func, select, update

from gateway.cases import store as cases
from gateway.cases.identity import NotAParty, Placement, place_received
from gateway.crossborder import consent_store, existence_held, existence_store, issues_store
from gateway.crossborder.existence_held import HeldQuery
from gateway.crossborder.threads import assessment_thread
from gateway.errors import ConfigError, PolicyRefusal
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger import audit
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import Direction
from gateway.ledger.store import Ledger
from gateway.ledger.tables import EXISTENCE_QUERIES, messages
from gateway.model import (
    Assessment,
    Audience,
    Child,
    ConsentAction,
    ConsentChange,
    Evaluation,
    IssueLogEntry,
    LegalBasis,
    MessageType,
    Notification,
    NotificationType,
    Purpose,
)
from gateway.outbox import Outbox
from gateway.policy import consent, existence, sharing, sovereignty
from gateway.policy.child import child_key
from gateway.policy.notifications import RULE_FAMILY
from gateway.settings import Settings

RULE_EXISTENCE_BASIS = "existence.basis"
RULE_EXISTENCE_RATE = "existence.rate"


def _place(ctx: ApplyContext, msg: Received, case_ref: str | None) -> Placement:
    """The case the message is about, or a refusal if its sender has no standing in it."""
    placed = place_received(
        ctx.conn,
        msg.authority,
        msg.sender,
        msg.env.header.correlation_id,
        case_ref,
        ctx.settings.directory.authorities,
    )
    if isinstance(placed, NotAParty):
        raise PolicyRefusal(sovereignty.RULE_NOT_A_PARTY, f"message {msg.message_id}: {placed}")
    return placed


def index_child(ctx: ApplyContext, authority: str, thread: str, child: Child) -> None:
    """Make a case findable by existence queries (keyed hashes only)."""
    path = ctx.settings.policy.existence_key_file
    if not path.exists():
        return
    try:
        key = existence.read_key(path)
    except ConfigError:
        return
    existence_store.index_child(ctx.conn, authority, thread, existence.keyed_hashes(key, child))


def _log(ctx: ApplyContext, msg: Received, thread_id: str, kind: str, **fields: str | None) -> None:
    cases.log(ctx.conn, msg.authority, thread_id, ctx.now, kind, **fields)


def on_assessment(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, Assessment)
    header = msg.env.header
    place = _place(ctx, msg, body.case_ref)
    thread, lines = assessment_thread(msg.authority, msg.sender, place, body, header)

    def effect() -> None:
        key = child_key(body.child)
        if body.consent is not None:
            consent_store.add(
                ctx.conn,
                authority=msg.authority,
                child_key=key,
                case_ref=body.case_ref,
                consent=body.consent,
                action=consent.action_of(body.consent),
                source=msg.sender,
                now=ctx.now,
                message_id=msg.message_id,
            )
        # A thread the placement found absent is inserted at once (no UPDATE first).
        cases.save(ctx.conn, thread, ctx.now, new=place.thread is None)
        # The thread's new lines in one statement, in the order they were written one by one.
        said = [
            cases.NewLogLine(
                msg.authority, thread.correlation_id, ctx.now, kind, counterparty, detail=detail
            )
            for kind, counterparty, detail in lines
        ]
        received = cases.NewLogLine(
            msg.authority,
            thread.correlation_id,
            ctx.now,
            "RECEIVED:Assessment",
            counterparty=msg.sender,
            message_id=msg.message_id,
            detail=header.legal_basis.value,
        )
        cases.log_all(ctx.conn, [*said, received])
        index_child(ctx, msg.authority, thread.correlation_id, body.child)

    return effect


def on_consent_change(ctx: ApplyContext, msg: Received) -> Effect:
    """Another authority's consent message: recorded as its statement. A withdrawal
    restricts, at the receiver, only the records that sender disclosed."""
    body = msg.env.body
    assert isinstance(body, ConsentChange)
    header = msg.env.header
    place = _place(ctx, msg, body.case_ref)
    key = child_key(body.child)
    withdrawal = header.legal_basis == LegalBasis.CONSENT_WITHDRAWAL or body.action in (
        ConsentAction.WITHDRAWN,
        ConsentAction.REFUSED,
    )

    def effect() -> None:
        consent_store.add(
            ctx.conn,
            authority=msg.authority,
            child_key=key,
            case_ref=body.case_ref,
            consent=body.consent,
            action=body.action,
            source=msg.sender,
            now=ctx.now,
            message_id=msg.message_id,
        )
        if not withdrawal:
            return
        history = consent_store.entries(ctx.conn, msg.authority, key)
        stated = consent.Effective(consent.latest(consent.from_source(history, msg.sender)))
        still = sharing.covers(
            stated, ctx.settings.policy, msg.sender, msg.authority, Purpose.SHARE_CROSS_BORDER
        )
        if still is None:
            detail = "partial withdrawal; sharing with this authority is still covered"
        else:
            restricted = _restrict_from(ctx.conn, msg.authority, msg.sender, key)
            detail = f"{restricted} record(s) from {msg.sender} restricted: {still.rule}"
        _log(
            ctx,
            msg,
            place.thread_id,
            "CONSENT_WITHDRAWN",
            counterparty=msg.sender,
            message_id=msg.message_id,
            detail=detail,
        )

    return effect


def _restrict_from(conn: Connection, authority: str, sender: str, key: str) -> int:
    """Restrict what ``sender`` disclosed to ``authority`` about the child; how many.

    The child's messages are found by the child's index, then the sender's kept:
    with the sender in the same condition, SQLite chose the sender's index and read
    everything that authority had ever sent here (issue 14)."""
    about_child = select(messages.c.id).where(
        messages.c.direction == Direction.INBOUND.value,
        messages.c.authority == authority,
        messages.c.child_key == key,
    )
    done = conn.execute(
        update(messages)
        .where(messages.c.id.in_(about_child), messages.c.sender == sender)
        .values(restricted=True)
    )
    return int(done.rowcount or 0)


def on_notification(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, Notification)
    header = msg.env.header
    where = f"message {msg.message_id}"
    if body.type == NotificationType.EXISTENCE_ANSWER:
        return _existence_answer(ctx, msg, body)
    place = _place(ctx, msg, body.case_ref)
    thread, owner = place.thread, place.owner
    if body.audience == Audience.FAMILY and thread is not None and thread.inform_family is False:
        raise PolicyRefusal(
            RULE_FAMILY,
            f"{where}: the family must not be told about this case "
            "(significant-harm decision); no family-facing notice is generated",
        )
    if body.type == NotificationType.EXISTENCE_QUERY and header.legal_basis not in (
        LegalBasis.CONSENT,
        LegalBasis.SAFEGUARDING,
    ):
        raise PolicyRefusal(
            RULE_EXISTENCE_BASIS,
            f"{where}: an existence query needs consent for the check or the safeguarding basis",
        )
    if body.type == NotificationType.EXISTENCE_QUERY:
        _check_existence_rate(ctx, msg, where)
    changed: cases.CaseThread | None = None
    if body.type == NotificationType.SIGNIFICANT_HARM_REFERRAL:
        inform = next((d.value for d in body.details if d.name == "inform_family"), "true")
        if inform != "false":
            sovereignty.check_family_lift(thread, owner, msg.sender, where)
        base = thread or cases.CaseThread(
            authority=msg.authority,
            correlation_id=place.thread_id,
            owner=owner,
            case_ref=body.case_ref,
            child_key=child_key(body.child) if body.child else None,
            initiating_la=msg.sender,
            parties=(msg.sender, msg.authority),
        )
        if inform == "false":
            changed = replace(base, inform_family=False, family_restricted_by=msg.sender)
        else:
            changed = replace(base, inform_family=True, family_restricted_by=None)
    to_la: str | None = None
    if body.type in (
        NotificationType.GOVERNING_AUTHORITY_CHANGED,
        NotificationType.LEAD_PROFESSIONAL_ALLOCATED,
    ):
        what = (
            "the governing authority"
            if body.type == NotificationType.GOVERNING_AUTHORITY_CHANGED
            else "the lead professional"
        )
        sovereignty.check_governance_change(thread, owner, msg.sender, what, where)
        to_la = next((d.value for d in body.details if d.name == "to_la"), None)
        if thread is not None and to_la and to_la != thread.governing_la:
            changed = replace(thread, governing_la=to_la)

    def effect() -> None:
        if changed is not None:
            cases.save(ctx.conn, changed, ctx.now)
            if to_la and thread is not None:
                _log(
                    ctx,
                    msg,
                    place.thread_id,
                    "GOVERNING_AUTHORITY_CHANGED",
                    counterparty=to_la,
                    detail=f"from {thread.governing_la} to {to_la} (said by {msg.sender})",
                )
        if body.type == NotificationType.EXISTENCE_QUERY:
            _count_existence_query(ctx, msg)
            _answer_existence(ctx, msg)
        _log(
            ctx,
            msg,
            place.thread_id,
            f"NOTICE_RECEIVED:{body.type.value}",
            counterparty=msg.sender,
            message_id=msg.message_id,
            detail=body.summary,
        )

    return effect


def _existence_answer(ctx: ApplyContext, msg: Received, body: Notification) -> Effect:
    """An answer is accepted only in reply to an existence query this authority sent its
    sender, once, and is filed on that query's thread, whatever thread the answer names.

    Before 2026-12-06 (found by a review) a reply to any notice sent to the answering
    authority was taken, as often as it came, and filed on the thread its header
    named: the asked authority could add lines to any thread of the asker's.
    """
    asked = msg.env.header.in_reply_to
    query = (
        ctx.conn.execute(
            select(messages.c.correlation_id, HAS_BODY.label("held")).where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.authority == msg.authority,
                messages.c.message_id == asked,
                messages.c.recipient == msg.sender,
                messages.c.message_type == MessageType.NOTIFICATION.value,
                messages.c.purpose == Purpose.EXISTENCE_CHECK.value,
            )
        ).first()
        if asked
        else None
    )
    if query is None:
        raise PolicyRefusal(
            sovereignty.RULE_UNSOLICITED_ANSWER,
            f"message {msg.message_id}: an existence answer from {msg.sender} that replies to "
            f"no existence query {msg.authority} sent it",
        )
    assert asked is not None  # the query was found by it
    if not query.held:
        # Erased here (its retention period, or an erasure of the child it asked about,
        # whose request told the asked authority): an answer would tie the child to
        # the answering authority's contact again on the erased thread.
        raise PolicyRefusal(
            sovereignty.RULE_UNSOLICITED_ANSWER,
            f"message {msg.message_id}: query {asked} was erased at {msg.authority}; "
            "an answer to it is not taken",
        )
    thread = str(query.correlation_id)
    kind = f"NOTICE_RECEIVED:{body.type.value}"
    if cases.logged(ctx.conn, msg.authority, thread, kind, asked) is not None:
        raise PolicyRefusal(
            sovereignty.RULE_UNSOLICITED_ANSWER,
            f"message {msg.message_id}: query {asked} was answered by {msg.sender} already; "
            "a query is answered once",
        )

    def effect() -> None:
        _log(
            ctx,
            msg,
            thread,
            kind,
            counterparty=msg.sender,
            message_id=asked,
            detail="; ".join(f"{d.name}={d.value}" for d in body.details),
        )

    return effect


# Existence queries accepted by a recording transaction, by (receiving authority,
# sender, basis): not yet in the ledger until it records them.
_QUERIES_IN_TRANSACTION: WeakKeyDictionary[Connection, Counter[tuple[str, str, str]]] = (
    WeakKeyDictionary()
)


def _check_existence_rate(ctx: ApplyContext, msg: Received, where: str) -> None:
    """Refuse a requester's existence query past its daily budget for the basis it claims.

    The asked authority answers automatically, so its gateway is where a hostile or
    careless requester is stopped, per requesting authority per 24 hours, counting
    what this gateway recorded from it: ``policy.existence_safeguarding_per_day``
    safeguarding-basis queries, ``policy.existence_consent_per_day`` consent-basis
    ones. The consent a query claims cannot be checked here: without a budget of
    its own, claiming it asked without limit (found by a review, 2026-12-06).
    """
    basis = msg.env.header.legal_basis
    most, setting = ctx.settings.policy.existence_budget(basis)
    since = ctx.now - timedelta(days=1)
    # This transaction's earlier queries from the sender count too: a received batch
    # is recorded after every message in it was judged, and a burst in one batch
    # went past the rate unseen.
    earlier = _QUERIES_IN_TRANSACTION.get(ctx.conn, Counter())[
        (msg.authority, msg.sender, basis.value)
    ]
    seen = (
        earlier
        + ctx.conn.execute(
            select(func.count())
            .select_from(messages)
            .where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == msg.authority,
                messages.c.sender == msg.sender,
                EXISTENCE_QUERIES,  # as the index's condition is written: searched by it
                messages.c.legal_basis == basis.value,
                messages.c.created_at >= since,
            )
        ).scalar_one()
    )
    if seen >= most:
        raise PolicyRefusal(
            RULE_EXISTENCE_RATE,
            f"{where}: {msg.sender} has asked {seen} {basis.value.lower()}-basis existence "
            f"queries in 24 hours, the limit (policy.{setting} = {most}); not answered",
        )


def _count_existence_query(ctx: ApplyContext, msg: Received) -> None:
    """Count an accepted existence query against its sender's rate for its basis, for
    the rest of the recording transaction.

    Counted once every applier has judged it (in its effect), as the ledger counts
    it: only accepted queries are recorded with their purpose and basis, a refused
    one is quarantined without them. Counted when judged, a query refused past the
    rate (or by another applier) used up budget in a batch that it would not across
    batches, and the refusals named a count the ledger never held.
    """
    key = (msg.authority, msg.sender, msg.env.header.legal_basis.value)
    _QUERIES_IN_TRANSACTION.setdefault(ctx.conn, Counter())[key] += 1


def _query_of(ctx: ApplyContext, msg: Received) -> HeldQuery:
    header = msg.env.header
    assert isinstance(msg.env.body, Notification)
    approval = header.safeguarding
    return HeldQuery(
        authority=msg.authority,
        message_id=msg.message_id,
        requester=header.sender,
        correlation_id=header.correlation_id,
        digest=msg.digest,
        approver=approval.approver if approval else None,
        approver_role=approval.approver_role if approval else None,
        reason=approval.reason if approval else None,
        hashes=tuple(existence.hashes_in(msg.env.body)),
        received_at=ctx.now,
    )


def _answer_existence(ctx: ApplyContext, msg: Received) -> None:
    query = _query_of(ctx, msg)
    basis = msg.env.header.legal_basis
    if basis == LegalBasis.SAFEGUARDING and ctx.settings.policy.existence_safeguarding_hold:
        # Waits for the coordinator (gateway.services.coordination.decide_existence_query).
        existence_held.hold(ctx.conn, query)
        audit.append(
            ctx.kit.ledger, [_existence_event(query, "EXISTENCE_QUERY_HELD", "held")], ctx.conn
        )
        return
    answer_existence(ctx.conn, ctx.outbox, ctx.kit.ledger, ctx.settings, query, basis.value)


def _existence_event(query: HeldQuery, action: str, said: str, basis: str = "") -> audit.AuditEvent:
    approver = (
        f"{query.approver} ({query.approver_role or 'role not given'}) at {query.requester}"
        if query.approver is not None
        else f"consent at {query.requester}"
    )
    reason = f"; reason: {query.reason}" if query.reason is not None else ""
    return audit.AuditEvent(
        actor=approver,
        action=action,
        authority=query.authority,
        counterparty=query.requester,
        legal_basis=basis or (LegalBasis.SAFEGUARDING.value if query.approver else None),
        message_id=query.message_id,
        digest=query.digest,
        detail=f"{said}{reason}"[:500],
    )


def answer_existence(
    conn: Connection,
    outbox: Outbox,
    ledger: Ledger,
    settings: Settings,
    query: HeldQuery,
    basis: str,
    approved_by: str | None = None,
) -> None:
    """Answer ``query`` from the index (match and the coordinator's contact, or no match),
    and audit it here as the asking end audits its question."""
    authority = query.authority
    match = existence_store.holds(conn, authority, query.hashes)
    coordinator = settings.directory.get(authority).coordinator if match else None
    answer = outbox.envelope(
        sender=authority,
        recipient=query.requester,
        body=existence.answer_body(match, coordinator),
        correlation=query.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=query.message_id,
    )
    said = f"match={'true' if match else 'false'}"
    if approved_by is not None:
        said += f"; approved by {approved_by}"
    outbox.queue(
        conn,
        [outbox.sign(answer)],
        [_existence_event(query, "EXISTENCE_QUERY_ANSWERED", said, basis)],
    )


def on_evaluation(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, Evaluation)
    place = _place(ctx, msg, body.case_ref)
    views = len(body.practitioner_views)

    def effect() -> None:
        _log(
            ctx,
            msg,
            place.thread_id,
            "EVALUATION_RECEIVED",
            counterparty=msg.sender,
            message_id=msg.message_id,
            detail=f"child views {'recorded' if body.child_views else 'missing'}; family views "
            f"{'recorded' if body.family_views else 'missing'}; {views} practitioner views; "
            f"cross-border impact: {body.cross_border_impact or 'not stated'}",
        )

    return effect


def on_issue(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, IssueLogEntry)
    sovereignty.check_reporter(body.reported_by_la, msg.sender, body.entry_id)

    def effect() -> None:
        issues_store.store(ctx.conn, msg.authority, body, ctx.now, msg.sender, msg.message_id)

    return effect
