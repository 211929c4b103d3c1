"""Dismissals: a message taken off what needs a human, while it keeps its status.

A person dismisses a message in a final state (``gateway.ops.attention.dismiss``,
who and why recorded with an audit entry). The ledger dismisses one itself in
one case: a message whose body was erased here (its retention period, an
erasure) in a state that asks a human to act (``DISMISSABLE``). It keeps its
status (a dead letter was sent and never receipted, or its local system refused
it: recalls, receipts and the acknowledgement deadline go on reading that), but
there is nothing left to replay, hand over or look at, so nobody is asked to.
Dismissed where the body goes (``gateway.retention.purge``) and where such a
message moves into another of those states later (the re-send loop, the
acknowledgement deadline), since a dismissal holds only in its status. What an
earlier version erased and left listed, the next retention run dismisses
(``gateway.retention.purge.erased_earlier``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, insert, select

from gateway.ledger import audit
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger, as_utc
from gateway.ledger.tables import dismissals, messages

ERASED = "erased here: there is nothing left to replay or hand over"
# States that ask a human to act, who may dismiss them (``gateway.ops.attention``).
DISMISSABLE = frozenset(
    {Status.DEAD_LETTERED, Status.QUARANTINED, Status.REJECTED, Status.UNDELIVERABLE}
)
CHUNK = 500  # ids a statement names


def in_force() -> ColumnElement[bool]:
    """A dismissal of the ``messages`` row in the enclosing statement, still holding: the
    message keeps the status it was dismissed in, and has not changed since."""
    return and_(
        dismissals.c.message_pk == messages.c.id,
        dismissals.c.status == messages.c.status,
        dismissals.c.at >= messages.c.updated_at,
    )


def not_dismissed() -> ColumnElement[bool]:
    return ~exists().where(in_force())


def _asking(conn: Connection, pks: Sequence[int], *more: ColumnElement[bool]) -> list[Any]:
    """Those of ``pks`` that ask a human to act, not dismissed (and meet ``more``)."""
    found = select(
        messages.c.id,
        messages.c.authority,
        messages.c.message_id,
        messages.c.direction,
        messages.c.sender,
        messages.c.recipient,
        messages.c.digest,
        messages.c.status,
        messages.c.updated_at,
    ).where(messages.c.status.in_([s.value for s in DISMISSABLE]), not_dismissed(), *more)
    return [
        row
        for first in range(0, len(pks), CHUNK)  # a retention run erases thousands
        for row in conn.execute(found.where(messages.c.id.in_(list(pks[first : first + CHUNK]))))
    ]


def foreseen(conn: Connection, pks: Sequence[int]) -> int:
    """How many of ``pks`` ``erased`` would dismiss once their bodies are erased."""
    return len(_asking(conn, pks))


def erased(ledger: Ledger, conn: Connection, pks: Sequence[int], actor: str) -> int:
    """Dismiss those of ``pks`` whose body is erased and that ask a human to act, in
    ``conn``'s transaction, each with an audit entry; how many."""
    rows = _asking(conn, pks, ~HAS_BODY)
    if not rows:
        return 0
    now = ledger.clock()
    conn.execute(
        insert(dismissals),
        [
            {
                "message_pk": r.id,
                "authority": r.authority,
                "status": r.status,
                "actor": actor[:128],
                "reason": ERASED,
                # Never before its last change (a replica's clock a little behind): the
                # dismissal holds from that change on.
                "at": max(now, as_utc(r.updated_at)),
            }
            for r in rows
        ],
    )
    audit.append(
        ledger,
        [
            audit.AuditEvent(
                actor=actor[:128],
                action="DISMISS",
                authority=r.authority,
                counterparty=_counterparty(r.direction, r.sender, r.recipient),
                message_id=r.message_id,
                digest=r.digest,
                detail=f"{r.status} dismissed: {ERASED}",
            )
            for r in rows
        ],
        conn,
    )
    return len(rows)


def _counterparty(direction: str, sender: str, recipient: str) -> str | None:
    code = recipient if direction == Direction.OUTBOUND.value else sender
    return code if len(code) == 3 else None  # "?": a delivery no sender could be read from
