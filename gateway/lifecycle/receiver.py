"""The recipient's side: acting on a Recall or Correction, and proving what was done.

A recall or correction is accepted only from the original's sender, naming
the original by the digest this gateway received (``held``); anything else
is refused with the rule's name and quarantined, its sender told in a
REJECTED receipt. Then:

- **Recall**: the original is withdrawn from the local system's inbox if it
  never had it (the recall itself is then kept from the local system too:
  there is nothing to tell it); otherwise the original is restricted and the
  recall is handed to the local system through its connector, so it learns
  the record is recalled. If this authority forwarded the original (sent the
  same record on to another authority), the recall follows it there: a recall
  of its own, naming the one it follows.
- **Correction**: the original is withdrawn likewise, or noted SUPERSEDED;
  the correction (the whole corrected record) is handed over either way.

What was done is kept (``tables.received``) and said in the signed receipt
for the recall or correction (``receipt_notes``): Action WITHDRAWN, or
PASSED_ON with HandedOverAt, NOT_HELD, and a reason with no personal data.

A recall that comes before its original (``original``: ``NotReceivedYet``)
**stands** (``tables.standing``): it is receipted NOT_HELD, saying so, and the
original, when it comes (retried after a failure, or parked by this authority's
broker and replayed), is recorded withdrawn and restricted, no applier run, never
handed over (``on_arrival``), and the recall is receipted again, WITHDRAWN. A
correction cannot stand (it is judged against its original): it waits for it,
retried by the broker, and is refused on its last try if it never comes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select, update

from gateway.crossborder import receive
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import NotReceivedYet, PolicyRefusal
from gateway.feature import ApplyContext, Effect, ReceiptKey, ReceiptNote, Received
from gateway.ledger import audit
from gateway.ledger.bodies import BODY
from gateway.ledger.in_lists import bind, in_list, size_of
from gateway.ledger.status import Direction, Route, Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import messages
from gateway.lifecycle import held, outcomes, sender, standing
from gateway.lifecycle.held import Fate, Held
from gateway.lifecycle.tables import follows, recalls, received
from gateway.model import (
    ActionTaken,
    Assessment,
    ConsentChange,
    Correction,
    Envelope,
    Evaluation,
    LegalBasis,
    MessageRef,
    MessageType,
    Notification,
    Recall,
)
from gateway.wakeups import RECEIPTS

log = logging.getLogger(__name__)

RULE_NOT_THE_SENDER = "recall.not-the-sender"
RULE_DIGEST = "recall.digest-mismatch"
RULE_ROUTE = "lifecycle.not-through-an-inbox"
RULE_SAME_RECORD = "correction.same-record"
# Forwarded copies in these states never left, or were already taken back.
NOT_FORWARDED = ("REJECTED", "QUARANTINED", "WITHDRAWN", "HELD_LOCAL", "ACCEPTED")


def to_an_inbox(msg: Received) -> None:
    """Recalls, corrections and notices travel to an authority's inbox, never to an
    escalation queue (where nobody holds what they name)."""
    if msg.route is not Route.INBOX:
        raise PolicyRefusal(
            RULE_ROUTE,
            f"{msg.env.header.message_type.value} {msg.message_id} came through the "
            f"{msg.route.value} route: it is only taken from an authority's inbox",
        )


def original(ctx: ApplyContext, msg: Received, ref: MessageRef, what: str) -> Held:
    """The original ``ref`` names, as this authority received it from ``msg``'s sender;
    PolicyRefusal when that sender did not send it (or names another digest)."""
    to_an_inbox(msg)
    copies = held.sent_by(ctx.conn, msg.authority, msg.sender, ref)
    found = held.matching(copies, ref)
    if found is not None:
        return found
    if all(c.status is Status.QUARANTINED for c in copies):
        # No message of that sender stands under the id here (a refused one may be a
        # forgery under its name): the original may be behind this one (retried
        # after a failure, or still queued), as a recall sent moments after its
        # original can be. Unless another's message holds the id, it is not refused
        # for good until it has had time to arrive.
        known = ctx.kit.ledger.inbound_known(
            msg.authority, [(msg.sender, ref.message_id)], ctx.conn
        )
        if ref.message_id not in known.holders:
            if not copies:
                raise NotReceivedYet(
                    RULE_NOT_THE_SENDER,
                    f"{what} {msg.message_id}: {msg.authority} has not received message "
                    f"{ref.message_id} from {msg.sender}; only a message's sender may "
                    f"{what} it",
                )
            raise NotReceivedYet(
                RULE_DIGEST,
                f"{what} {msg.message_id}: no message {ref.message_id} with digest "
                f"{ref.digest[:16]}... from {msg.sender} is here (copies under that id "
                "were refused)",
            )
    if not copies:
        raise PolicyRefusal(
            RULE_NOT_THE_SENDER,
            f"{what} {msg.message_id}: {msg.sender} did not send {msg.authority} message "
            f"{ref.message_id}; only a message's sender may {what} it",
        )
    raise PolicyRefusal(
        RULE_DIGEST,
        f"{what} {msg.message_id}: digest {ref.digest[:16]}... is not that of message "
        f"{ref.message_id} as {msg.authority} received it from {msg.sender}",
    )


def remember(
    conn: Connection,
    msg: Received,
    kind: str,
    original_id: str,
    fate: Fate,
    said: str,
    now: object,
) -> None:
    """Keep what was done about ``msg``, for its receipt item."""
    conn.execute(
        insert(received).values(
            authority=msg.authority,
            sender=msg.sender,
            message_id=msg.message_id,
            kind=kind,
            original_id=original_id,
            action=fate.action.value,
            handed_over_at=fate.handed_over_at,
            reason=said,
            at=now,
        )
    )


def _audit(ctx: ApplyContext, msg: Received, kind: str, original_id: str, said: str) -> None:
    """The audit entry for a recall, correction or erasure request acted on."""
    audited(
        ctx,
        msg,
        f"{kind.lower()} from {msg.sender}",
        f"{kind}_RECEIVED",
        f"{kind.lower()} of {original_id}: {said}",
    )


def audited(ctx: ApplyContext, msg: Received, actor: str, action: str, detail: str) -> None:
    """An audit entry about ``msg`` (no personal data: ids, digests, what was done)."""
    audit.append(
        ctx.kit.ledger,
        [
            audit.AuditEvent(
                actor=actor,
                action=action,
                authority=msg.authority,
                counterparty=msg.sender,
                legal_basis=LegalBasis.NO_PERSONAL_DATA.value,
                message_id=msg.message_id,
                digest=msg.digest,
                detail=detail[:500],
            )
        ],
        ctx.conn,
    )


def _forwards(conn: Connection, authority: str, original_held: Held) -> list[str]:
    """Ids of this authority's own messages that sent the same record on to others
    (``held.sent_on``: never its own record, echoed back to it)."""
    if original_held.content_digest is None:
        return []
    rows = conn.execute(
        select(messages.c.message_id)
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.OUTBOUND.value,
            held.sent_on(authority, original_held),
            messages.c.recipient.not_in([authority, original_held.sender]),
            messages.c.status.not_in(NOT_FORWARDED),
        )
        .order_by(messages.c.id)
    ).all()
    return [str(r[0]) for r in rows]


def _follow(ctx: ApplyContext, msg: Received, body: Recall, original_held: Held) -> list[str]:
    """Recall what this authority forwarded of the original; what each follow-up did."""
    done = []
    for forwarded in _forwards(ctx.conn, msg.authority, original_held):
        try:
            sent = sender.recall(
                ctx.kit,
                msg.authority,
                forwarded,
                body.reason,
                f"follows recall {msg.message_id} from {msg.sender}",
                actor=f"recall from {msg.sender}",
                conn=ctx.conn,
                follows=MessageRef(msg.message_id, msg.digest),
            )
        except PolicyRefusal as refusal:
            log.info("recall %s: forwarded %s: %s", msg.message_id, forwarded, refusal.rule)
            continue
        if sent.message_id is None:
            done.append(f"its forward to {sent.recipient} was withdrawn before it was sent")
        else:
            ctx.conn.execute(
                insert(follows).values(
                    authority=msg.authority,
                    origin=msg.sender,
                    origin_id=msg.message_id,
                    onward=sent.recipient,
                    onward_id=sent.message_id,
                )
            )
            done.append(
                f"it had been forwarded to {sent.recipient} (message {forwarded}): "
                f"recall {sent.message_id} follows it there"
            )
    return done


def on_recall(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, Recall)
    try:
        found = original(ctx, msg, body.original, "recall")
    except NotReceivedYet as early:
        if not standing.can_name(body.original):
            # No recorded message has such an id or digest: nothing to wait for.
            raise PolicyRefusal(early.rule, early.reason) from None
        if not standing.may_stand(ctx, msg, body.original):
            raise  # it waits as a correction does (refused on its last try)
        return _stand(ctx, msg, body)

    def effect() -> None:
        why = f"recalled by {msg.sender} (recall {msg.message_id}, {body.reason.value})"
        fate = held.take_back(ctx.kit, ctx.conn, msg.authority, found, why)
        parts = [fate.said]
        if fate.action is ActionTaken.PASSED_ON:
            ctx.conn.execute(
                update(messages).where(messages.c.id == found.pk).values(restricted=True)
            )
            ctx.kit.ledger.note(
                found.pk, Status.RECALLED, f"{why}; the recall is passed on to it", ctx.conn
            )
            parts.append("the recall is passed on to it")
        else:
            ctx.keep_from_local_system(
                f"recall of {found.message_id}: nothing to tell the local system ({fate.said})"
            )
            if fate.action is ActionTaken.WITHDRAWN and found.status is Status.WITHDRAWN:
                ctx.kit.ledger.note(found.pk, Status.RECALLED, why, ctx.conn)
        parts.extend(_follow(ctx, msg, body, found))
        said = "; ".join(parts)
        remember(ctx.conn, msg, "RECALL", found.message_id, fate, said, ctx.now)
        _audit(ctx, msg, "RECALL", found.message_id, said)

    return effect


STANDS = (
    "not received here yet; the recall stands: should it come, it is withdrawn "
    "before the local system has it, and this recall receipted again"
)
ON_ARRIVAL = "it came after the recall and was withdrawn on arrival, before its local system had it"
# Kept for the record withdrawn on arrival, so its own receipt item says so.
KIND_ARRIVAL = "RECALLED_EARLY"


def _stand(ctx: ApplyContext, msg: Received, body: Recall) -> Effect:
    """No original here yet: the recall stands (``on_arrival``)."""

    def effect() -> None:
        standing.stand(ctx, msg, body.original, standing.Kind.RECALL)
        ctx.keep_from_local_system(
            f"recall of {body.original.message_id}: nothing to tell the local system (not "
            "received here yet; the recall stands)"
        )
        fate = Fate(ActionTaken.NOT_HELD, None, STANDS)
        remember(ctx.conn, msg, "RECALL", body.original.message_id, fate, STANDS, ctx.now)
        _audit(ctx, msg, "RECALL", body.original.message_id, STANDS)

    return effect


def on_arrival(ctx: ApplyContext, msg: Received) -> str | None:
    """A new record its sender's standing recall names (same sender, id and digest):
    the standing recalls are resolved, each receipted again, WITHDRAWN, and the reason
    the record is withdrawn as it arrives is returned (``feature.Arrival``: recorded
    withdrawn and restricted, no applier run, never handed over). None for every other
    record, and for one an erasure request stands for too (the retention feature
    erases it, and resolves the recalls with it: ``recalled_on_arrival``)."""
    if msg.env.header.message_type.value in sender.NOT_RECALLABLE_TYPES:
        return None
    rows = standing.matching(ctx, msg)
    if not rows or any(r.kind is standing.Kind.ERASURE for r in rows):
        return None
    why = recalled_on_arrival(ctx, msg, rows)
    # The record's own receipt item says so too: its sender holds no plain ACCEPTED.
    # A correction's item is read by its sender as what was done about the original
    # it corrects, which stands as it was: the correction itself is refused.
    if msg.env.header.message_type is MessageType.CORRECTION:
        fate = Fate(ActionTaken.REFUSED, None, f"{why}; the original stands as it was")
    else:
        fate = Fate(ActionTaken.WITHDRAWN, None, why)
    remember(ctx.conn, msg, KIND_ARRIVAL, rows[0].message_id, fate, fate.said, ctx.now)
    return why


def recalled_on_arrival(ctx: ApplyContext, msg: Received, rows: Sequence[standing.Standing]) -> str:
    """The recalls of ``rows`` (what stands for ``msg``, which just came) resolved,
    each receipted again, WITHDRAWN; why ``msg`` is withdrawn ('' when none is a
    recall). Every row of ``rows`` is resolved."""
    standing.resolve(ctx, list(rows))
    recall_ids = [r.message_id for r in rows if r.kind is standing.Kind.RECALL]
    if not recall_ids:
        return ""
    named = ", ".join(recall_ids)
    mine = (received.c.authority == msg.authority) & (received.c.sender == msg.sender)
    ctx.conn.execute(
        update(received)
        .where(mine, received.c.message_id.in_(recall_ids))
        .values(action=ActionTaken.WITHDRAWN.value, reason=ON_ARRIVAL, at=ctx.now)
    )
    receipt_again(ctx.conn, msg.authority, msg.sender, recall_ids)
    ctx.kit.ledger.announce(ctx.conn, RECEIPTS)
    actor = f"standing recall from {msg.sender}"
    audited(ctx, msg, actor, "RECALL_ON_ARRIVAL", f"recall {named}: {ON_ARRIVAL}")
    first = min(r.at for r in rows if r.kind is standing.Kind.RECALL)
    return (
        f"recalled by {msg.sender} (recall {named}, standing since "
        f"{first.isoformat(timespec='seconds')}): withdrawn on arrival, before the local "
        "system had it"
    )


# What each kind of replacement is judged by, as that record sent alone would be.
_JUDGES: dict[type, tuple[MessageType, Callable[[ApplyContext, Received], Effect]]] = {
    Assessment: (MessageType.ASSESSMENT, receive.on_assessment),
    ConsentChange: (MessageType.CONSENT_CHANGE, receive.on_consent_change),
    Notification: (MessageType.NOTIFICATION, receive.on_notification),
    Evaluation: (MessageType.EVALUATION, receive.on_evaluation),
}


def _judge_replacement(ctx: ApplyContext, msg: Received, body: Correction, found: Held) -> None:
    """PolicyRefusal unless the replacement is the same kind of record on the same case
    and thread as the original, and, a notice, would be accepted sent alone.

    It is recorded under its own case and thread and handed to the local system:
    unjudged, a party could correct a harmless notice into one about a case it
    is no party to, or a family-facing notice the case forbids (found by a
    review, 2026-12-06).
    """
    where = f"correction {msg.message_id}"
    mtype, judge = _JUDGES[type(body.replacement)]
    row = ctx.conn.execute(
        select(messages.c.message_type, messages.c.correlation_id, messages.c.case_ref, BODY).where(
            messages.c.id == found.pk
        )
    ).one()
    was = _record_type(ctx, row.message_type, row.body)
    if was != mtype.value:
        raise PolicyRefusal(
            RULE_SAME_RECORD,
            f"{where}: replaces a {was} with a {mtype.value}; a correction corrects a "
            "record, it does not change what it is",
        )
    case_ref = getattr(body.replacement, "case_ref", None)
    if msg.env.header.correlation_id != row.correlation_id or (
        row.case_ref is not None and case_ref != row.case_ref
    ):
        raise PolicyRefusal(
            RULE_SAME_RECORD,
            f"{where}: the replacement is on another case or thread than the original "
            f"{found.message_id}; a correction stays on the original's case",
        )
    if isinstance(body.replacement, Notification):
        # Where a notice may go and who may hear it (the case it names, its audience)
        # is what a corrected notice could change: judged as that notice sent alone
        # (judged only: a refusal raises; its effects are the original's to keep). A
        # record's other rules (a plan change's consent) were not asked of a
        # correction before and the sending side does not ask them: judged here,
        # honest corrections were refused and their chain left stuck (the review).
        header = replace(msg.env.header, message_type=mtype)
        judge(ctx, replace(msg, env=Envelope(header, body.replacement)))


def _record_type(ctx: ApplyContext, message_type: str, body: bytes | None) -> str:
    """The kind of record a received message is: a correction's is its replacement's."""
    if message_type != MessageType.CORRECTION.value or body is None:
        return message_type
    limits = ctx.settings.limits
    root = xmlsafe.parse(
        bytes(body), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
    )
    earlier = element_to_envelope(root).body
    assert isinstance(earlier, Correction)  # recorded as one, and decoded when received
    return _JUDGES[type(earlier.replacement)][0].value


def on_correction(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, Correction)
    found = original(ctx, msg, body.original, "correction")
    _judge_replacement(ctx, msg, body, found)

    def effect() -> None:
        why = f"superseded by correction {msg.message_id} from {msg.sender}"
        fate = held.take_back(ctx.kit, ctx.conn, msg.authority, found, why)
        if fate.action is ActionTaken.PASSED_ON:
            ctx.kit.ledger.note(found.pk, Status.SUPERSEDED, why, ctx.conn)
            said = f"{fate.said}; the corrected record is handed over to supersede it"
        elif fate.action is ActionTaken.WITHDRAWN:
            said = f"the original was {fate.said}; the corrected record is handed over instead"
        else:
            said = f"{fate.said}; the corrected record is handed over"
        remember(ctx.conn, msg, "CORRECTION", found.message_id, fate, said, ctx.now)
        _audit(ctx, msg, "CORRECTION", found.message_id, said)

    return effect


# Read for every receipt this gateway signs: built once per size of its list of ids
# (``in_lists``: no expanding parameter, issue 14).
@functools.cache
def _received_by_id(size: int) -> Select[Any]:
    return select(received).where(in_list(received.c.message_id, "ids", size))


def receipt_notes(conn: Connection, keys: Sequence[ReceiptKey]) -> Mapping[ReceiptKey, ReceiptNote]:
    """What the receipt items for received recalls, corrections and erasure requests say."""
    wanted = set(keys)
    if not wanted:
        return {}
    ids = sorted({k[2] for k in wanted})
    size = size_of(ids)
    rows = conn.execute(_received_by_id(size), bind("ids", ids, size)).all()
    notes: dict[ReceiptKey, ReceiptNote] = {}
    for row in rows:
        r = row._mapping
        key = (r["authority"], r["sender"], r["message_id"])
        if key in wanted:
            at = r["handed_over_at"]
            notes[key] = ReceiptNote(
                ActionTaken(r["action"]), None if at is None else as_utc(at), r["reason"]
            )
    return notes


def relay_onward(conn: Connection, authority: str, onward: str, receipt_id: str) -> int:
    """The onward recipient's proof about a recall we passed on, added to what we said
    about the recall we followed, whose sender is then receipted again; how many."""
    rows = conn.execute(
        select(follows.c.origin, follows.c.origin_id, recalls.c.action, recalls.c.handed_over_at)
        .join(
            recalls,
            (recalls.c.authority == follows.c.authority)
            & (recalls.c.message_id == follows.c.onward_id),
        )
        .where(
            follows.c.authority == authority,
            follows.c.onward == onward,
            recalls.c.receipt_id == receipt_id,
            recalls.c.action.is_not(None),
        )
    ).all()
    for origin, origin_id, action, handed in rows:
        said = f"at {onward}: {outcome_words(ActionTaken(action), handed)}"
        where = (
            (received.c.authority == authority)
            & (received.c.sender == origin)
            & (received.c.message_id == origin_id)
        )
        before = conn.execute(select(received.c.reason).where(where)).scalar()
        conn.execute(update(received).where(where).values(reason=f"{before or ''}; {said}"))
        receipt_again(conn, authority, origin, [origin_id])
    return len(rows)


def restate(
    conn: Connection,
    authority: str,
    sender: str,
    message_id: str,
    action: ActionTaken,
    said: Callable[[str], str],
    now: datetime,
) -> None:
    """What the receipt item of ``sender``'s ``message_id`` says, changed: ``action``, and
    ``said`` of what it said (``remember``)."""
    where = (
        (received.c.authority == authority)
        & (received.c.sender == sender)
        & (received.c.message_id == message_id)
    )
    before = conn.execute(select(received.c.reason).where(where)).scalar()
    conn.execute(
        update(received).where(where).values(action=action.value, reason=said(before or ""), at=now)
    )


def receipt_again(conn: Connection, authority: str, sender: str, ids: list[str]) -> None:
    """Owe ``sender`` a receipt again for its messages ``ids`` received by ``authority``:
    what their receipt items say (``received``) has changed since the last."""
    conn.execute(
        update(messages)
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.INBOUND.value,
            messages.c.sender == sender,
            messages.c.message_id.in_(ids),
        )
        .values(receipt_due=True)
    )


def outcome_words(action: ActionTaken, handed: datetime | None) -> str:
    """What the onward recipient did, in the words the sender's outcomes use."""
    words = outcomes.SAID[action]
    if handed is not None:
        words += f" (since {as_utc(handed).isoformat(timespec='seconds')})"
    return words
