"""The ledger: every message, its status history, the outbox and the inbox.

One class, ``Ledger``, assembled from the core (``core.py``: recording and
status moves) and the two sides (``outbox.py``, ``inbox.py``); reading
and reporting live here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Row,
    Select,
    func,
    select,
)

from gateway.ledger.core import Clock, LedgerCore, _with_history, as_utc, make_engine, utc_now
from gateway.ledger.inbox import InboundQueries
from gateway.ledger.outbox import OutboundQueries
from gateway.ledger.records import (
    HistoryEntry,
    MessageRecord,
)
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import EITHER_DIRECTION, history, messages
from gateway.ledger.unindexed import unindexed

__all__ = [
    "Clock",
    "Ledger",
    "LedgerCore",
    "as_utc",
    "authorities_held",
    "make_engine",
    "newest_of_each",
    "utc_now",
]


def authorities_held(conn: Connection) -> tuple[str, ...]:
    """Every authority that has a message in the ledger, hosted or not, now or once: each
    found by a seek in an index that begins with the authority (the least after the
    last found), not by reading every message (``cafgw status``, ``cafgw messages``)."""
    least = select(func.min(messages.c.authority).label("code")).cte("held", recursive=True)
    after = (
        select(func.min(messages.c.authority))
        .where(messages.c.authority > least.c.code)
        .scalar_subquery()
    )
    held = least.union_all(select(after).where(least.c.code.is_not(None)))
    found = conn.execute(select(held.c.code).where(held.c.code.is_not(None))).scalars()
    return tuple(str(code) for code in found)


def newest_of_each(
    conn: Connection, query: Select[Any], authorities: Iterable[str], at: Column[datetime]
) -> list[Row[Any]]:
    """``query``, bound by ``authority`` and ordered by ``at`` then id, newest first, run
    for each of ``authorities`` and its rows merged, newest first: one statement over
    several authorities is sorted whole, where an index by authority and ``at`` gives
    each one's newest rows in order, no more than the limit (issue 14).

    One statement each, which may each see the ledger as it is then: a row may move
    across a page's edge between them, as between two pages, but none is read twice
    (an authority's rows are its own).
    """
    rows = [
        r for code in sorted(set(authorities)) for r in conn.execute(query, {"authority": code})
    ]
    rows.sort(key=lambda r: (r._mapping[at], r.id), reverse=True)
    return rows


class Ledger(OutboundQueries, InboundQueries):
    """Message records and their history."""

    # --- reading ------------------------------------------------------------

    def find(
        self,
        message_id: str | None = None,
        authority: str | None = None,
        status: Status | None = None,
        direction: Direction | None = None,
        correlation_id: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
        with_history: bool = True,
        authorities: Collection[str] | None = None,
    ) -> list[MessageRecord]:
        """Messages matching every given filter, newest first. ``authorities``: of any of
        those (none matches an empty one)."""
        conditions = []
        if direction is None and (message_id is not None or status is not None):
            # The id's and the status's indexes have the direction before them: naming
            # neither direction, SQLite read every message of the authority (a look-up
            # by id, the dead letters' list).
            conditions.append(EITHER_DIRECTION)
        if message_id is not None:
            conditions.append(messages.c.message_id == message_id)
        if authority is not None:
            conditions.append(messages.c.authority == authority)
        if authorities is not None:
            conditions.append(messages.c.authority.in_(sorted(authorities)))
        if status is not None:
            # With an id, an index on it finds the message; SQLite would take the
            # status's instead (every message of the authority in that status).
            column = messages.c.status if message_id is None else unindexed(messages.c.status)
            conditions.append(column == status.value)
        if direction is not None:
            conditions.append(messages.c.direction == direction.value)
        if correlation_id is not None:
            conditions.append(messages.c.correlation_id == correlation_id)
        if since is not None:
            conditions.append(messages.c.updated_at >= since)
        # ``where()`` of no condition selects everything, as ``and_()`` of none did
        # (deprecated by SQLAlchemy).
        query = self._record_select().where(*conditions).order_by(messages.c.id.desc()).limit(limit)
        with self.transaction() as conn:
            records = [self._to_record(r) for r in conn.execute(query).all()]
            if not with_history or not records:
                return records
            by_pk: dict[int, list[HistoryEntry]] = {r.pk: [] for r in records}
            for pk, st, at, reason in conn.execute(
                select(history.c.message_pk, history.c.status, history.c.at, history.c.reason)
                .where(history.c.message_pk.in_(list(by_pk)))
                .order_by(history.c.id)
            ).all():
                by_pk[pk].append(HistoryEntry(Status(st), as_utc(at), reason))
        return [_with_history(r, tuple(by_pk[r.pk])) for r in records]

    def counts(self, since: datetime | None = None) -> dict[tuple[str, str, str], int]:
        """Message counts by (authority, direction, status)."""
        query = select(
            messages.c.authority, messages.c.direction, messages.c.status, func.count()
        ).group_by(messages.c.authority, messages.c.direction, messages.c.status)
        if since is not None:
            query = query.where(messages.c.updated_at >= since)
        with self.transaction() as conn:
            return {(a, d, s): int(n) for a, d, s, n in conn.execute(query).all()}
