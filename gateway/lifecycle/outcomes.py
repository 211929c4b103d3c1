"""What the recipients did about recalls and corrections, from their signed receipts.

A receipt item for a recall or correction may say what was done about the
original (``Action``: withdrawn before handover, passed on to the local
system which had it since ``HandedOverAt``, ...). Only an item whose digest
is that of the recall or correction we sent, from the authority we sent it
to, counts. The outcome is kept per recipient and noted on the original's
status history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from gateway.ledger.in_lists import EXPANDING, SIZES, bind, in_list, size_of
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import history, messages
from gateway.lifecycle.tables import recalls
from gateway.model import ActionTaken, Receipt, ReceiptItem, ReceiptOutcome

OUTCOME = {
    ReceiptOutcome.ACCEPTED: "DELIVERED",
    ReceiptOutcome.DUPLICATE: "DELIVERED",
    ReceiptOutcome.REJECTED: "REJECTED",
    ReceiptOutcome.UNDELIVERABLE: "UNDELIVERABLE",
}
SAID = {
    ActionTaken.WITHDRAWN: "withdrawn before its local system had it",
    ActionTaken.PASSED_ON: "its local system had it; the notice was passed on",
    ActionTaken.ERASED: "erased",
    ActionTaken.NOT_HELD: "not held there",
    ActionTaken.REFUSED: "refused",
}
# What a recipient did about the original: a later NOT_HELD (said before it was done,
# arriving after) never replaces it.
DONE = frozenset(
    {ActionTaken.WITHDRAWN.value, ActionTaken.PASSED_ON.value, ActionTaken.ERASED.value}
)
# A receipt that refused the recall or correction itself states no action: the
# recipient did nothing about the original, which stands there as it was.
UNDONE = {
    OUTCOME[ReceiptOutcome.REJECTED]: "refused; the original stands there as it was",
    OUTCOME[ReceiptOutcome.UNDELIVERABLE]: "undeliverable; the original stands there as it was",
}


@dataclass(frozen=True)
class RecallOutcome:
    """One recall or correction and what its recipient proved was done."""

    kind: str
    message_id: str | None
    original_id: str
    recipient: str
    reason: str
    actor: str
    requested_at: datetime
    status: str  # of the recall/correction message, or WITHDRAWN when it never had to leave
    outcome: str | None
    action: str | None
    handed_over_at: datetime | None
    outcome_reason: str | None
    outcome_at: datetime | None

    def describe(self) -> str:
        if self.outcome is None:
            return f"{self.status}: waiting for {self.recipient}'s receipt"
        what = SAID.get(ActionTaken(self.action), self.action) if self.action else None
        when = (
            f" (handed over {self.handed_over_at.isoformat(timespec='seconds')})"
            if self.handed_over_at
            else ""
        )
        if self.action == ActionTaken.NOT_HELD.value and self.outcome_reason:
            return f"{self.outcome}: {what} ({self.outcome_reason})"
        if what is None:
            if self.outcome in UNDONE:
                why = f" ({self.outcome_reason})" if self.outcome_reason else ""
                return f"{self.outcome}: at {self.recipient}, {UNDONE[self.outcome]}{why}"
            return f"{self.outcome}: {self.recipient} has not said what it did"
        return f"{self.outcome}: {what}{when}"


# Read for every receipt a gateway takes in, nearly always to find nothing: built
# once per size of the id list (a statement built afresh costs SQLAlchemy more CPU
# than the read, and so does an expanding IN; issue 14, ``gateway.ledger.in_lists``).
_OUR_RECALLS = {
    size: select(
        recalls.c.id,
        recalls.c.message_id,
        recalls.c.original_id,
        recalls.c.kind,
        recalls.c.action,
    ).where(
        recalls.c.authority == bindparam("authority"),
        recalls.c.recipient == bindparam("recipient"),
        in_list(recalls.c.message_id, "ids", size),
    )
    for size in (*SIZES, EXPANDING)
}


def apply_receipt(
    conn: Connection, authority: str, sender: str, receipt_id: str, body: Receipt, now: datetime
) -> int:
    """Record what ``sender``'s receipt says about our recalls and corrections; how many."""
    ids = [i.message_id for i in body.items]
    if not ids:
        return 0
    size = size_of(ids)
    ours = {
        r.message_id: r
        for r in conn.execute(
            _OUR_RECALLS[size],
            {"authority": authority, "recipient": sender, **bind("ids", ids, size)},
        ).all()
    }
    if not ours:
        return 0
    digests = dict(
        conn.execute(
            select(messages.c.message_id, messages.c.digest).where(
                messages.c.authority == authority,
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_id.in_(list(ours)),
            )
        ).all()
    )
    done = 0
    for item in body.items:
        row = ours.get(item.message_id)
        if row is None or digests.get(item.message_id) != item.digest:
            continue
        if item.action is ActionTaken.NOT_HELD and row.action in DONE:
            # A recall that stood there, receipted again once its original came: the
            # first receipt, if it comes last, does not undo what the second proved.
            continue
        conn.execute(
            update(recalls)
            .where(recalls.c.id == row.id)
            .values(
                outcome=OUTCOME[item.outcome],
                action=None if item.action is None else item.action.value,
                handed_over_at=item.handed_over_at,
                outcome_reason=item.reason,
                outcome_at=now,
                receipt_id=receipt_id,
            )
        )
        _note_original(conn, authority, row.original_id, row.kind, sender, item, now)
        done += 1
    return done


def _note_original(
    conn: Connection,
    authority: str,
    original_id: str,
    kind: str,
    sender: str,
    item: ReceiptItem,
    now: datetime,
) -> None:
    pk = conn.execute(
        select(messages.c.id).where(
            messages.c.authority == authority,
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.message_id == original_id,
        )
    ).scalar()
    if pk is None:
        return
    said = _said(item)
    handed = item.handed_over_at
    when = f", handed over {as_utc(handed).isoformat(timespec='seconds')}" if handed else ""
    status = Status.RECALLED if kind == "RECALL" else Status.SUPERSEDED
    conn.execute(
        history.insert().values(
            message_pk=pk,
            status=status.value,
            at=now,
            reason=f"{kind.lower()} outcome at {sender}: {said}{when}",
        )
    )


def _said(item: ReceiptItem) -> str:
    """What ``item`` says was done about the original, for its history."""
    if item.action is ActionTaken.NOT_HELD and item.reason:
        return f"{SAID[item.action]} ({item.reason})"  # e.g. a recall that stands there
    if item.action:
        return SAID[item.action]
    undone = UNDONE.get(OUTCOME[item.outcome])
    if undone is None:
        return "no action stated"
    return undone + (f" ({item.reason})" if item.reason else "")


def outcomes_of(
    conn: Connection, authority: str, original_id: str | None = None, limit: int = 200
) -> list[RecallOutcome]:
    """``authority``'s recalls and corrections (of one original, or the newest), with outcomes."""
    query = (
        select(recalls, messages.c.status)
        .select_from(
            recalls.outerjoin(
                messages,
                (messages.c.authority == recalls.c.authority)
                & (messages.c.direction == Direction.OUTBOUND.value)
                & (messages.c.message_id == recalls.c.message_id)
                & (recalls.c.message_id != recalls.c.original_id),
            )
        )
        .where(recalls.c.authority == authority)
        .order_by(recalls.c.id.desc())
        .limit(limit)
    )
    if original_id is not None:
        query = query.where(recalls.c.original_id == original_id[:64])
    out = []
    for row in conn.execute(query).all():
        r = row._mapping
        withdrawn_locally = r["message_id"] == r["original_id"]
        out.append(
            RecallOutcome(
                kind=r["kind"],
                message_id=None if withdrawn_locally else r["message_id"],
                original_id=r["original_id"],
                recipient=r["recipient"],
                reason=r["reason"],
                actor=r["actor"],
                requested_at=as_utc(r["requested_at"]),
                status=Status.WITHDRAWN.value if withdrawn_locally else (r["status"] or "?"),
                outcome=r["outcome"],
                action=r["action"],
                handed_over_at=as_utc(r["handed_over_at"]) if r["handed_over_at"] else None,
                outcome_reason=r["outcome_reason"],
                outcome_at=as_utc(r["outcome_at"]) if r["outcome_at"] else None,
            )
        )
    return out
