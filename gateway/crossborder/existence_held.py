"""Safeguarding-basis existence queries held for the asked authority's coordinator.

With ``policy.existence_safeguarding_hold`` a received query on the
safeguarding basis is not answered automatically: it waits here (the keyed
hashes it carries, who asked, on whose approval and why) until the
coordinator approves it (then it is answered as usual) or refuses it
(nothing is sent). ``gateway.services.coordination`` decides; the API and
``cafgw existence held|approve|refuse`` are its faces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, Text, insert, select
from sqlalchemy import update as sql_update

from gateway.crossborder.tables import metadata
from gateway.ledger.store import as_utc

existence_held = Table(
    "existence_held",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("requester", String(3), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("digest", String(64)),
    Column("approver", String(200)),
    Column("approver_role", String(200)),
    Column("reason", Text),
    Column("hashes", Text, nullable=False),  # keyed hashes, space-separated
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("decision", String(16)),  # APPROVED or REFUSED once decided
    Column("decided_by", String(200)),
    Column("decided_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class HeldQuery:
    authority: str
    message_id: str
    requester: str
    correlation_id: str
    digest: str | None
    approver: str | None
    approver_role: str | None
    reason: str | None
    hashes: tuple[str, ...]
    received_at: datetime
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


def hold(conn: Connection, query: HeldQuery) -> None:
    values = {k: v for k, v in query.__dict__.items() if k != "hashes"}
    conn.execute(insert(existence_held).values(**values, hashes=" ".join(query.hashes)))


def _of(row: object) -> HeldQuery:
    m = row._mapping  # type: ignore[attr-defined]
    return HeldQuery(
        authority=m["authority"],
        message_id=m["message_id"],
        requester=m["requester"],
        correlation_id=m["correlation_id"],
        digest=m["digest"],
        approver=m["approver"],
        approver_role=m["approver_role"],
        reason=m["reason"],
        hashes=tuple(m["hashes"].split()),
        received_at=m["received_at"],
        decision=m["decision"],
        decided_by=m["decided_by"],
        decided_at=as_utc(m["decided_at"]) if m["decided_at"] is not None else None,
    )


def waiting(conn: Connection, authority: str) -> list[HeldQuery]:
    """``authority``'s held queries not yet decided, oldest first."""
    rows = conn.execute(
        select(existence_held)
        .where(existence_held.c.authority == authority, existence_held.c.decision.is_(None))
        .order_by(existence_held.c.id)
    )
    return [_of(r) for r in rows]


@dataclass(frozen=True)
class Decided:
    """A held query with the decision in force (``decision``, ``decided_by``,
    ``decided_at``); ``already``: it was decided before, and nothing was done now."""

    query: HeldQuery
    already: bool = False


def decide(
    conn: Connection, authority: str, message_id: str, decision: str, by: str, now: datetime
) -> Decided | None:
    """Decide a waiting query (once); None if ``authority`` holds no such query.

    A query decided before (a second click, a colleague a second earlier) keeps that
    decision and comes back ``already`` decided. Read under a lock on its row, so of
    two decisions at once the second waits for the first and sees it.
    """
    this_one = existence_held.c.authority == authority, existence_held.c.message_id == message_id
    row = conn.execute(select(existence_held).where(*this_one).with_for_update()).first()
    if row is None:
        return None
    query = _of(row)
    if query.decision is None:
        done = conn.execute(
            sql_update(existence_held)
            .where(existence_held.c.id == row.id, existence_held.c.decision.is_(None))
            .values(decision=decision, decided_by=by, decided_at=now)
        )
        if done.rowcount == 1:
            return Decided(replace(query, decision=decision, decided_by=by, decided_at=now))
        # Decided meanwhile: only where the read above could not lock the row.
        row = conn.execute(select(existence_held).where(*this_one)).one()
        query = _of(row)
    return Decided(query, already=True)
