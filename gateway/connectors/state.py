"""Each received message's handover state, kept on its inbound row in the ledger.

``status`` (VERIFIED or REPLAYED: waiting; DELIVERED_LOCAL: placed for the
local system; ACKNOWLEDGED: taken; DEAD_LETTERED: refused; UNDELIVERABLE:
deadline passed), ``attempts`` (failed handovers), ``next_attempt_at`` (not
before) and ``reason`` (the last failure). A restart picks up exactly where
the ledger says. Every status change is guarded by the status it expects,
so the handover loop, the deadline job and the pull API never undo each
other's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, or_, select, update

from gateway.connectors.base import LocalMessage
from gateway.connectors.tables import handover_failures
from gateway.ledger.bodies import BODY
from gateway.ledger.status import Direction, Route, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed

# Waiting for a push connector to hand them over.
WAITING = frozenset({Status.VERIFIED, Status.REPLAYED})
# Not (yet) acknowledged by the local system: the deadline runs for these.
UNACKNOWLEDGED = frozenset(
    {Status.VERIFIED, Status.REPLAYED, Status.DELIVERED_LOCAL, Status.DEAD_LETTERED}
)
RECEIPT = "Receipt"


def _inbound(authority: str) -> list[ColumnElement[bool]]:
    # Escalation notices reach people through the dispute feature, not the inbox.
    return [
        messages.c.direction == Direction.INBOUND.value,
        messages.c.authority == authority,
        messages.c.message_type != RECEIPT,
        messages.c.route == Route.INBOX.value,
    ]


def due(ledger: Ledger, authority: str, now: datetime, limit: int) -> list[LocalMessage]:
    """Messages of ``authority`` waiting for handover whose next attempt is due, oldest first
    (claimed or not: what monitoring and tests look at)."""
    query = (
        select(*_LOCAL_COLUMNS).where(*_due(authority, now)).order_by(messages.c.id).limit(limit)
    )
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    return [_local(authority, r) for r in rows]


def claim(
    ledger: Ledger, authority: str, now: datetime, until: datetime, limit: int
) -> list[LocalMessage]:
    """Claim up to ``limit`` of ``authority``'s due messages for handover, oldest first.

    The claim is a lease (``claimed_until``, which inbound rows otherwise do
    not use) taken by a conditional update, so replicas sharing the ledger
    hand each message over once; the handover's outcome clears it
    (``move``/``defer``/``release``), and a claim left by a replica that died
    lapses at ``until``. On PostgreSQL the candidates are read ``FOR UPDATE
    SKIP LOCKED``, so a replica claiming at the same moment takes the next ones.
    """
    free = or_(messages.c.claimed_until.is_(None), messages.c.claimed_until <= now)
    with ledger.transaction() as conn:
        candidates = [
            int(r[0])
            for r in conn.execute(
                select(messages.c.id)
                .where(*_due(authority, now), free)
                .order_by(messages.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        ]
        if not candidates:
            return []
        won = [
            int(r[0])
            for r in conn.execute(
                update(messages)
                .where(messages.c.id.in_(candidates), *_due(authority, now), free)
                .values(claimed_until=until)
                .returning(messages.c.id)
            ).all()
        ]
        if not won:
            return []
        rows = conn.execute(
            select(*_LOCAL_COLUMNS).where(messages.c.id.in_(won)).order_by(messages.c.id)
        ).all()
    return [_local(authority, r) for r in rows]


def release(ledger: Ledger, pks: Sequence[int]) -> None:
    """Give claimed messages back at once (the turn ended before handing them over)."""
    if pks:
        with ledger.transaction() as conn:
            conn.execute(
                update(messages).where(messages.c.id.in_(list(pks))).values(claimed_until=None)
            )


_LOCAL_COLUMNS = (
    messages.c.id,
    messages.c.message_id,
    messages.c.sender,
    messages.c.message_type,
    BODY,
    messages.c.attempts,
)


def _due(authority: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        *_inbound(authority),
        messages.c.status.in_([s.value for s in WAITING]),
        or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now),
    ]


def _local(authority: str, r: Any) -> LocalMessage:
    return LocalMessage(r[0], r[1], authority, r[2], r[3], bytes(r[4] or b""), int(r[5] or 0))


def move(
    ledger: Ledger,
    conn: Connection,
    pk: int,
    expected: Iterable[Status],
    status: Status,
    reason: str | None,
    **values: object,
) -> bool:
    """``pk`` to ``status`` with a history entry, only if it is in ``expected``; True if moved."""
    now = ledger.clock()
    result = conn.execute(
        update(messages)
        .where(messages.c.id == pk, messages.c.status.in_([s.value for s in expected]))
        .values(status=status.value, reason=reason, updated_at=now, claimed_until=None, **values)
    )
    if result.rowcount != 1:
        return False
    conn.execute(insert(history).values(message_pk=pk, status=status.value, at=now, reason=reason))
    return True


def defer(
    ledger: Ledger,
    conn: Connection,
    authority: str,
    tried: LocalMessage,
    until: datetime,
    reason: str,
) -> None:
    """The local system failed ``tried``: nothing more for ``authority`` before ``until``.

    The tried message counts the failed attempt (and the failure is kept in
    ``handover_failures`` for monitoring); every other waiting message of the
    authority waits as well, so that an endpoint that is down is asked
    once per backoff step, not once per message.
    """
    waiting = [s.value for s in WAITING]
    tried_rows = conn.execute(
        update(messages)
        .where(messages.c.id == tried.pk, messages.c.status.in_(waiting))
        .values(
            attempts=messages.c.attempts + 1,
            next_attempt_at=until,
            reason=reason,
            claimed_until=None,
        )
    ).rowcount
    if tried_rows:
        conn.execute(
            insert(handover_failures).values(
                authority=authority, message_pk=tried.pk, at=ledger.clock(), reason=reason
            )
        )
    conn.execute(
        update(messages)
        .where(
            *_inbound(authority),
            messages.c.status.in_(waiting),
            messages.c.id != tried.pk,
            or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at < until),
        )
        .values(next_attempt_at=until)
    )


def placed(ledger: Ledger, authority: str, limit: int) -> list[tuple[int, str]]:
    """``(pk, message id)`` of messages placed for ``authority``'s local system, oldest first."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.message_id)
            .where(*_inbound(authority), messages.c.status == Status.DELIVERED_LOCAL.value)
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def unacknowledged_before(
    ledger: Ledger, authority: str, received_before: datetime, limit: int
) -> list[int]:
    """Messages of ``authority`` received before the cutoff and still not acknowledged."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(messages.c.id)
            .where(
                *_inbound(authority),
                messages.c.status.in_([s.value for s in UNACKNOWLEDGED]),
                # By the statuses' index, not ``ix_messages_made``: nearly every
                # message was received before the cutoff (``unindexed``).
                unindexed(messages.c.created_at) <= received_before,
            )
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
    return [int(r[0]) for r in rows]


def move_all(
    ledger: Ledger,
    pks: Sequence[int],
    expected: Iterable[Status],
    status: Status,
    reason: str | None,
    conn: Connection | None = None,
    **values: object,
) -> int:
    """``move`` each of ``pks`` in one transaction (``conn``'s, when given); how many
    moved."""
    if conn is None:
        with ledger.transaction() as own:
            return move_all(ledger, pks, expected, status, reason, own, **values)
    wanted = frozenset(expected)
    return sum(move(ledger, conn, pk, wanted, status, reason, **values) for pk in pks)
