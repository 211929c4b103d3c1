"""The sender's side: recall a message, or supersede it with a correction.

Only a message this authority sent, to another authority, can be recalled
or corrected. One not yet published is simply withdrawn from the outbox
(nothing left, nothing to tell). Otherwise a signed ``Recall`` (no personal
data) or ``Correction`` (the whole corrected body, on the original's legal
basis, with consent judged now as for any send) goes to the recipient,
the original's history says so, and the ``recalls`` table keeps it until
the recipient's receipt proves what was done. Corrections chain: correcting
a message that was already corrected corrects the latest version, unless that
version already carries the same body and explanation (the same correction
asked twice), which is answered with it and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from gateway.crossborder import consent_store
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope, header_from_element
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.feature import Kit
from gateway.ledger import audit, locks
from gateway.ledger.bodies import BODY
from gateway.ledger.core import as_utc
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import messages
from gateway.lifecycle.outcomes import OUTCOME
from gateway.lifecycle.tables import recalls
from gateway.model import (
    Assessment,
    ConsentChange,
    Correction,
    Evaluation,
    LegalBasis,
    MessageRef,
    Notification,
    Purpose,
    Recall,
    RecallReason,
    ReceiptOutcome,
)
from gateway.outbox import content_digest, disclosure, new_envelope
from gateway.policy import consent as consent_rules
from gateway.policy import sharing, special_category
from gateway.policy.child import child_key

RULE_NOT_RECALLABLE = "recall.not-recallable"
RULE_ALREADY = "recall.already-recalled"
RULE_NEVER_SENT = "recall.never-sent"
RULE_NOT_SENT_YET = "correction.not-sent-yet"
RULE_SAME_RECORD = "correction.same-record"
RULE_NPD_CHILD = "basis.no-personal-data-carries-child"
NOT_RECALLABLE_TYPES = frozenset({"Receipt", "Recall", "AccessNotice", "ErasureRequest"})
NEVER_LEFT = frozenset({Status.REJECTED, Status.QUARANTINED, Status.WITHDRAWN})
UNSENT = frozenset({Status.ACCEPTED, Status.HELD_LOCAL, *OUTBOX_STATES})

Replacement = Assessment | ConsentChange | Notification | Evaluation


@dataclass(frozen=True)
class Sent:
    """What a recall or correction did: sent (SIGNED), or the original withdrawn locally."""

    original_id: str
    recipient: str
    status: Status
    message_id: str | None
    detail: str


def _original(conn: Connection, authority: str, message_id: str) -> Any:
    row = conn.execute(
        select(messages, BODY)
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.message_id == message_id[:64],
        )
        .order_by(messages.c.id.desc())
    ).first()
    if row is None:
        raise NotFoundError(f"message {message_id} not found")
    m = row._mapping
    if m["recipient"] == authority or m["message_type"] in NOT_RECALLABLE_TYPES:
        raise PolicyRefusal(
            RULE_NOT_RECALLABLE,
            f"message {message_id} is a {m['message_type']} to {m['recipient']}: only a message "
            "sent to another authority can be recalled or corrected",
        )
    return m


def _locked_original(conn: Connection, authority: str, message_id: str) -> Any:
    """``_original``, read again once its case thread is locked (``locks.thread``): a recall
    or correction of it running at the same moment (the coordinator's click, the
    recipient's "not ours" answer) then finds this one's, and never sends a second."""
    first = _original(conn, authority, message_id)
    locks.xact_lock(conn, [locks.thread(authority, first["correlation_id"])])
    return _original(conn, authority, message_id)


_REFUSED = OUTCOME[ReceiptOutcome.REJECTED]


def _recalled(
    conn: Connection, authority: str, message_id: str, *, again: bool = False
) -> str | None:
    """The recall sent of ``authority``'s message ``message_id``, if any: who asked for
    it and when, for the one who asks a second time.

    ``again`` (a person asking): one its recipient refused (``REJECTED``: it did
    nothing, e.g. another sender's message held the id there,
    ``docs/delivery.md``) does not count. One not yet answered does, and so does
    a refused one for the gateway's own recalls (a "not ours" notice, a recall
    passed on), which a peer's refusal must not make it send again and again."""
    counted = [
        recalls.c.authority == authority,
        recalls.c.original_id == message_id,
        recalls.c.kind == "RECALL",
    ]
    if again:
        counted.append(or_(recalls.c.outcome.is_(None), recalls.c.outcome != _REFUSED))
    row = conn.execute(
        select(recalls.c.message_id, recalls.c.actor, recalls.c.requested_at)
        .where(*counted)
        .order_by(recalls.c.id)
    ).first()
    if row is None:
        return None
    when = as_utc(row[2]).isoformat(timespec="seconds")
    return f"recall {row[0]}, asked for by {row[1]} at {when}"


def _remember(
    conn: Connection,
    kit: Kit,
    authority: str,
    kind: str,
    message_id: str,
    original: Any,
    reason: str,
    actor: str,
    **outcome: Any,
) -> None:
    conn.execute(
        insert(recalls).values(
            authority=authority,
            kind=kind,
            message_id=message_id,
            original_id=original["message_id"],
            original_digest=original["digest"] or "",
            recipient=original["recipient"],
            reason=reason,
            actor=actor[:128],
            requested_at=kit.clock(),
            **outcome,
        )
    )


def recall(
    kit: Kit,
    authority: str,
    message_id: str,
    reason: RecallReason,
    explanation: str | None = None,
    actor: str = "gateway",
    conn: Connection | None = None,
    follows: MessageRef | None = None,
    *,
    again: bool = False,
) -> Sent:
    """Recall ``authority``'s message ``message_id`` from its recipient (``follows``: the
    recall received that this one passes on, when the message forwarded a recalled one;
    ``again``: a person asks, who may recall again what a recipient refused to recall)."""
    kit.outbox.signer(authority)
    if conn is None:
        with kit.ledger.transaction() as own:
            return recall(
                kit, authority, message_id, reason, explanation, actor, own, follows, again=again
            )
    return _recall(kit, conn, authority, message_id, reason, explanation, actor, follows, again)


def _recall(
    kit: Kit,
    conn: Connection,
    authority: str,
    message_id: str,
    reason: RecallReason,
    explanation: str | None,
    actor: str,
    follows: MessageRef | None = None,
    again: bool = False,
) -> Sent:
    original = _locked_original(conn, authority, message_id)
    earlier = _recalled(conn, authority, original["message_id"], again=again)
    if earlier is not None:
        raise PolicyRefusal(RULE_ALREADY, f"message {message_id} was already recalled ({earlier})")
    status = Status(original["status"])
    if status in NEVER_LEFT:
        raise PolicyRefusal(
            RULE_NEVER_SENT, f"message {message_id} is {status.value}: it never left"
        )
    why = f"recalled by {actor}: {reason.value}" + (f" ({explanation})" if explanation else "")
    if status in UNSENT:
        # Not one a publisher holds: it may be on the wire, so a Recall follows it.
        moved = kit.ledger.transition_from(
            [original["id"]],
            UNSENT,
            Status.WITHDRAWN,
            f"{why}; withdrawn before sending",
            conn,
            where=[kit.ledger.not_being_published(conn)],
        )
        if moved:
            withdrawn = {
                "outcome": "WITHDRAWN",
                "action": "WITHDRAWN",
                "outcome_reason": "withdrawn from the outbox before it was sent",
                "outcome_at": kit.clock(),
            }
            # A queued correction already has its row (message_id = its own id): that
            # row now says it never left; any other original gets a row of its own.
            if not conn.execute(
                update(recalls)
                .where(
                    recalls.c.authority == authority,
                    recalls.c.message_id == original["message_id"],
                )
                .values(**withdrawn)
            ).rowcount:
                _remember(
                    conn, kit, authority, "RECALL", original["message_id"], original,
                    reason.value, actor, **withdrawn,
                )  # fmt: skip
            return Sent(
                original["message_id"], original["recipient"], Status.WITHDRAWN, None,
                "withdrawn from the outbox before it was sent",
            )  # fmt: skip
    env = new_envelope(
        kit.clock,
        sender=authority,
        recipient=original["recipient"],
        body=Recall(
            MessageRef(original["message_id"], original["digest"] or ""),
            reason,
            explanation,
            follows,
        ),
        correlation=original["correlation_id"],
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=original["message_id"],
    )
    message = kit.outbox.sign(env, case_ref=original["case_ref"], child_key=original["child_key"])
    kit.ledger.record([message], conn)
    kit.ledger.note(
        original["id"], Status.RECALLED, f"{why}; recall {env.header.message_id} sent", conn
    )
    _remember(conn, kit, authority, "RECALL", env.header.message_id, original, reason.value, actor)
    audit.append(
        kit.ledger,
        [
            audit.AuditEvent(
                actor=actor[:128],
                action="RECALL",
                authority=authority,
                counterparty=original["recipient"],
                legal_basis=LegalBasis.NO_PERSONAL_DATA.value,
                message_id=env.header.message_id,
                digest=message.digest,
                detail=f"recall of {original['message_id']} ({reason.value})",
            )
        ],
        conn,
    )
    return Sent(
        original["message_id"],
        original["recipient"],
        Status.SIGNED,
        env.header.message_id,
        f"recall sent to {original['recipient']}",
    )


def _head(conn: Connection, authority: str, original: Any) -> Any:
    """The latest version in a correction chain that starts at (or passes) ``original``."""
    current = original
    for _ in range(1000):
        # A correction withdrawn before it was sent never superseded anything.
        row = conn.execute(
            select(recalls.c.message_id)
            .where(
                recalls.c.authority == authority,
                recalls.c.original_id == current["message_id"],
                recalls.c.kind == "CORRECTION",
                # Nor did one its recipient refused (a REJECTED receipt).
                or_(
                    recalls.c.outcome.is_(None),
                    recalls.c.outcome.not_in(("WITHDRAWN", "REJECTED")),
                ),
            )
            .order_by(recalls.c.id.desc())
        ).first()
        if row is None:
            return current
        current = _original(conn, authority, str(row[0]))
    raise PolicyRefusal("correction.chain", "the correction chain is too long")


def _same_record(message_id: str, latest: object, replacement: Replacement) -> None:
    """PolicyRefusal unless ``replacement`` is the same kind of record on the same case
    as ``latest`` (the version it supersedes): the rule the recipient's gateway holds
    a correction to (``receiver``, ``correction.same-record``), told here at once."""
    was = latest.replacement if isinstance(latest, Correction) else latest
    if type(was) is not type(replacement):
        raise PolicyRefusal(
            RULE_SAME_RECORD,
            f"message {message_id} is a {type(was).__name__}: a correction replaces it with "
            f"the corrected {type(was).__name__}, not a {type(replacement).__name__}",
        )
    case_ref = getattr(was, "case_ref", None)
    if case_ref is not None and getattr(replacement, "case_ref", None) != case_ref:
        raise PolicyRefusal(
            RULE_SAME_RECORD,
            f"message {message_id} is on case {case_ref}: a correction stays on its case "
            "(recall it and send the record on the right case instead)",
        )


def _for_purpose(body: Replacement, purpose: Purpose | None, kit: Kit) -> Replacement:
    policy = kit.settings.policy
    if isinstance(body, Assessment):
        return special_category.assessment_for(body, purpose, policy)
    if isinstance(body, ConsentChange):
        return special_category.consent_change_for(body, purpose, policy)
    if isinstance(body, Notification):
        return special_category.notification_for(body, purpose, policy)
    return body


def correct(
    kit: Kit,
    authority: str,
    message_id: str,
    replacement: Replacement,
    explanation: str,
    actor: str = "gateway",
) -> Sent:
    """Send a correction superseding ``message_id`` (or the latest correction of it)."""
    kit.outbox.signer(authority)
    limits = kit.settings.limits
    with kit.ledger.transaction() as conn:
        first = _locked_original(conn, authority, message_id)
        head = _head(conn, authority, first)
        for version in {first["message_id"], head["message_id"]}:
            if (earlier := _recalled(conn, authority, version)) is not None:
                raise PolicyRefusal(RULE_ALREADY, f"message {version} was recalled ({earlier})")
        status = Status(head["status"])
        queued_correction = head["message_type"] == "Correction" and status in OUTBOX_STATES
        if (
            status in NEVER_LEFT
            or (status in UNSENT and not queued_correction)
            or head["body"] is None
        ):
            raise PolicyRefusal(
                RULE_NOT_SENT_YET,
                f"message {head['message_id']} is {status.value}: only a message that was "
                "sent can be corrected (recall one still queued, then send the right one)",
            )
        root = xmlsafe.parse(
            bytes(head["body"]), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
        before = header_from_element(root)
        _same_record(head["message_id"], element_to_envelope(root).body, replacement)
        corrected = _for_purpose(replacement, before.purpose, kit)
        done = _corrected_alike(conn, authority, head, explanation, corrected)
        if done is not None:
            return done
        child = getattr(replacement, "child", None)
        key = child_key(child) if child is not None else head["child_key"]
        basis, consent_ref = before.legal_basis, before.consent_ref
        if basis == LegalBasis.NO_PERSONAL_DATA and child is not None:
            raise PolicyRefusal(
                RULE_NPD_CHILD,
                f"message {head['message_id']} carried no personal data; its correction may not",
            )
        if basis == LegalBasis.CONSENT and key is not None:
            consent = consent_rules.effective(consent_store.entries(conn, authority, key))
            refusal = sharing.covers(
                consent,
                kit.settings.policy,
                authority,
                head["recipient"],
                before.purpose or Purpose.SHARE_CROSS_BORDER,
            )
            if refusal is not None:
                raise PolicyRefusal(refusal.rule, refusal.reason)
            consent_ref = consent.reference(authority)
        body = Correction(
            MessageRef(head["message_id"], head["digest"] or ""),
            explanation,
            corrected,
        )
        env = new_envelope(
            kit.clock,
            sender=authority,
            recipient=head["recipient"],
            body=body,
            correlation=head["correlation_id"],
            legal_basis=basis,
            purpose=before.purpose,
            consent_ref=consent_ref,
            safeguarding=before.safeguarding,
            in_reply_to=head["message_id"],
        )
        personal = basis != LegalBasis.NO_PERSONAL_DATA
        message = kit.outbox.sign(
            env,
            case_ref=getattr(replacement, "case_ref", None) or head["case_ref"],
            child_key=key if personal else None,
        )
        kit.ledger.record([message], conn)
        kit.ledger.note(
            head["id"],
            Status.SUPERSEDED,
            f"superseded by correction {env.header.message_id} ({actor})",
            conn,
        )
        _remember(
            conn, kit, authority, "CORRECTION", env.header.message_id, head, "CORRECTION", actor
        )
        events = [disclosure(message, actor[:128])] if personal else []
        if before.safeguarding is not None:
            events.append(
                audit.AuditEvent(
                    actor=before.safeguarding.approver,
                    action="SAFEGUARDING_OVERRIDE",
                    authority=authority,
                    counterparty=head["recipient"],
                    legal_basis=basis.value,
                    message_id=env.header.message_id,
                    digest=message.digest,
                    detail=f"correction of {head['message_id']}, under its approval",
                )
            )
        audit.append(kit.ledger, events, conn)
    return Sent(
        head["message_id"], head["recipient"], Status.SIGNED, env.header.message_id,
        f"correction sent to {head['recipient']}"
        + ("" if head["message_id"] == first["message_id"] else " (of the latest version)"),
    )  # fmt: skip


def _corrected_alike(
    conn: Connection, authority: str, head: Any, explanation: str, corrected: Replacement
) -> Sent | None:
    """The answer already given if ``head``, the latest version, is a correction carrying
    this very body and explanation, else None.

    The same correction asked twice (a double click, a retry after a timeout, two
    people at once) used to send a second signed Correction superseding the first
    with itself: the child's data disclosed to the recipient once more, for nothing.
    Compared by the body's content digest (the stored body may be encrypted to the
    recipient), as ``head`` would carry it: correcting the version it corrects.
    """
    if head["message_type"] != "Correction" or not head["content_digest"]:
        return None
    row = conn.execute(
        select(recalls.c.original_id, recalls.c.original_digest).where(
            recalls.c.authority == authority,
            recalls.c.message_id == head["message_id"],
            recalls.c.kind == "CORRECTION",
        )
    ).first()
    if row is None:
        return None
    alike = Correction(MessageRef(row[0], row[1]), explanation, corrected)
    if content_digest(alike) != head["content_digest"]:
        return None
    return Sent(
        row[0], head["recipient"], Status(head["status"]), head["message_id"],
        f"already corrected so: correction {head['message_id']} carries this body",
    )  # fmt: skip


def replacement_of_body(body: object) -> Replacement:
    """``body`` if a correction may carry it (Assessment, ConsentChange, Notification,
    Evaluation)."""
    if isinstance(body, Assessment | ConsentChange | Notification | Evaluation):
        return body
    raise PolicyRefusal(
        "correction.body", f"a {type(body).__name__} cannot be the body of a correction"
    )
