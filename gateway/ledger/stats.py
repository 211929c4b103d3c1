"""Read-only ledger queries for monitoring: the dashboard and ``/metrics``.

Kept apart from ``store.Ledger`` because nothing here changes state and
every query is an aggregate or a bounded list, cheap enough to run on each
scrape or dashboard refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, func, select

from gateway.ledger.records import MessageRecord
from gateway.ledger.status import FINAL_STATES, Direction, Status
from gateway.ledger.store import Ledger, as_utc, newest_of_each
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed


@dataclass(frozen=True)
class TypeCount:
    authority: str
    direction: str
    message_type: str
    status: str
    count: int


@dataclass(frozen=True)
class Transition:
    """One status history entry with what monitoring needs of its message."""

    history_id: int
    authority: str
    direction: str
    message_type: str
    status: str
    at: datetime
    created_at: datetime


def counts_by_type(ledger: Ledger, authorities: Sequence[str] | None = None) -> list[TypeCount]:
    """Messages by (authority, direction, type, current status)."""
    cols = (messages.c.authority, messages.c.direction, messages.c.message_type, messages.c.status)
    query = select(*cols, func.count()).group_by(*cols)
    if authorities is not None:
        query = query.where(messages.c.authority.in_(list(authorities)))
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    return [TypeCount(a, d, t, s, int(n)) for a, d, t, s, n in rows]


def transitions_after(
    ledger: Ledger, after_id: int, statuses: Iterable[Status], limit: int = 5000
) -> list[Transition]:
    """History entries with id above ``after_id`` into one of ``statuses``, oldest first."""
    query = (
        select(
            history.c.id,
            messages.c.authority,
            messages.c.direction,
            messages.c.message_type,
            history.c.status,
            history.c.at,
            messages.c.created_at,
        )
        .join(messages, messages.c.id == history.c.message_pk)
        .where(history.c.id > after_id, history.c.status.in_([s.value for s in statuses]))
        .order_by(history.c.id)
        .limit(limit)
    )
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        Transition(int(i), a, d, t, s, as_utc(at), as_utc(created))
        for i, a, d, t, s, at, created in rows
    ]


def transition_counts_since(
    ledger: Ledger, since: datetime, authorities: Sequence[str] | None = None
) -> dict[tuple[str, str], int]:
    """How many messages entered each status since ``since``, by (authority, status)."""
    query = (
        select(messages.c.authority, history.c.status, func.count())
        .join(messages, messages.c.id == history.c.message_pk)
        .where(history.c.at >= since)
        .group_by(messages.c.authority, history.c.status)
    )
    if authorities is not None:
        query = query.where(messages.c.authority.in_(list(authorities)))
    with ledger.transaction() as conn:
        return {(a, s): int(n) for a, s, n in conn.execute(query).all()}


def receipts_overdue(ledger: Ledger, now: datetime) -> dict[str, int]:
    """Sent messages past their receipt deadline, by sending authority."""
    query = (
        select(messages.c.authority, func.count())
        .where(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.status == Status.SENT.value,
            messages.c.next_attempt_at.is_not(None),
            messages.c.next_attempt_at < now,
        )
        .group_by(messages.c.authority)
    )
    with ledger.transaction() as conn:
        return {a: int(n) for a, n in conn.execute(query).all()}


def awaiting_receipt_counts(ledger: Ledger, authorities: Sequence[str]) -> dict[str, int]:
    """Messages sent and waiting for the recipient's receipt, by authority (receipts left out)."""
    query = (
        select(messages.c.authority, func.count())
        .where(_awaiting_receipt(authorities))
        .group_by(messages.c.authority)
    )
    with ledger.transaction() as conn:
        return {a: int(n) for a, n in conn.execute(query).all()}


def awaiting_receipt(ledger: Ledger, authorities: Sequence[str], limit: int) -> list[MessageRecord]:
    """Messages waiting for a receipt, the soonest deadline first (receipts left out)."""
    query = (
        ledger._record_select()
        .where(_awaiting_receipt(authorities))
        .order_by(messages.c.next_attempt_at, messages.c.id)
        .limit(limit)
    )
    with ledger.transaction() as conn:
        return [ledger._to_record(r) for r in conn.execute(query).all()]


def _awaiting_receipt(authorities: Sequence[str]) -> ColumnElement[bool]:
    # A Receipt is sent once and answered by nothing: it never waits for one.
    return and_(
        messages.c.direction == Direction.OUTBOUND.value,
        messages.c.authority.in_(list(authorities)),
        messages.c.status == Status.SENT.value,
        messages.c.message_type != "Receipt",
    )


def latest(ledger: Ledger, authorities: Sequence[str], limit: int) -> list[MessageRecord]:
    """The most recently changed messages (receipts left out: they would crowd the rest).

    Each authority's newest ``limit`` by ``ix_messages_changed``, merged: one read
    of them all would be sorted whole (every message of the authorities shown, at
    each look at the dashboard), as an index ordered within each authority cannot
    order the rows of several.
    """
    newest = (
        ledger._record_select()
        .where(messages.c.authority == bindparam("authority"), messages.c.message_type != "Receipt")
        .order_by(messages.c.updated_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
    with ledger.transaction() as conn:
        rows = newest_of_each(conn, newest, authorities, messages.c.updated_at)
    return [ledger._to_record(r) for r in rows[:limit]]


def unfinished_created_before(
    ledger: Ledger, direction: Direction, authority: str, before: datetime
) -> int:
    """Messages of ``authority`` not in a final state, created before ``before``."""
    waiting = [s.value for s in Status if s not in FINAL_STATES]
    if direction == Direction.INBOUND:
        # Received messages wait for the local system until acknowledged.
        waiting = [Status.VERIFIED.value, Status.DELIVERED_LOCAL.value]
    query = select(func.count()).where(
        and_(
            messages.c.direction == direction.value,
            messages.c.authority == authority,
            messages.c.status.in_(waiting),
            # Not by ``ix_messages_made``: all but the newest messages were made
            # before it, where the statuses waiting are few (``unindexed``).
            unindexed(messages.c.created_at) < before,
        )
    )
    with ledger.transaction() as conn:
        return int(conn.execute(query).scalar_one())
