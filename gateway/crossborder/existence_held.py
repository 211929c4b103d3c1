"""Safeguarding-basis existence queries held for the asked authority's coordinator.

With ``policy.existence_safeguarding_hold`` a received query on the
safeguarding basis is not answered automatically: it waits here (the keyed
hashes it carries, who asked, on whose approval and why) until the
coordinator approves it (then it is answered as usual) or refuses it
(nothing is sent). ``gateway.services.coordination`` decides; the API and
``cafgw existence held|approve|refuse`` are its faces.

A held query keeps personal data: the keyed hashes of a child's identifiers, and
the asking approver's name, role and reason. They go (``scrub``) when the query is
past ``retention.existence_held_days`` since its last change, or when the child it
asks about is erased here (``gateway.retention.held_queries``); a query still
undecided then is closed unanswered (``EXPIRED``, ``ERASED``). What stays says that
it was asked, by which authority, when, and what became of it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy import update as sql_update

from gateway.crossborder.tables import metadata
from gateway.ledger.status import Direction
from gateway.ledger.store import as_utc
from gateway.ledger.tables import messages

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
    Column("decision", String(16)),  # APPROVED, REFUSED, EXPIRED or ERASED once decided
    Column("decided_by", String(200)),
    Column("decided_at", DateTime(timezone=True)),
)


EXPIRED = "EXPIRED"
"""Closed unanswered by the retention job: undecided for ``existence_held_days``."""
ERASED = "ERASED"
"""Closed unanswered: the child it asks about, or the query as received, was erased
here."""


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
        received_at=as_utc(m["received_at"]),
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


def _personal() -> ColumnElement[bool]:
    """Rows that still hold personal fields (not yet ``scrub``bed)."""
    c = existence_held.c
    return or_(
        c.hashes != "",
        c.approver.is_not(None),
        c.approver_role.is_not(None),
        c.reason.is_not(None),
    )


def _unfinished() -> ColumnElement[bool]:
    """Rows a purge still has work on: undecided, or holding personal fields."""
    return or_(existence_held.c.decision.is_(None), _personal())


def past(conn: Connection, authority: str, cutoff: datetime, limit: int) -> list[HeldQuery]:
    """``authority``'s held queries, undecided or with personal fields, whose last change
    (the decision, or the arrival while undecided) is at or before ``cutoff``; oldest
    first."""
    last = func.coalesce(existence_held.c.decided_at, existence_held.c.received_at)
    rows = conn.execute(
        select(existence_held)
        .where(existence_held.c.authority == authority, _unfinished(), last <= cutoff)
        .order_by(existence_held.c.id)
        .limit(limit)
    )
    return [_of(r) for r in rows]


def as_received(
    requester: ColumnElement[str] | str, message_id: ColumnElement[str] | str
) -> ColumnElement[bool]:
    """The ``messages`` rows that are a held query as received: inbound from its
    requester under its id (another sender's message under that id is not it). The
    caller names the authority."""
    return and_(
        messages.c.direction == Direction.INBOUND.value,
        messages.c.sender == requester,
        messages.c.message_id == message_id,
    )


def received_as(conn: Connection, authority: str, pks: Collection[int]) -> list[HeldQuery]:
    """``authority``'s held queries, undecided or with personal fields, whose ledger row
    as received is one of ``pks``."""
    wanted = sorted(pks)
    c = existence_held.c
    found: list[HeldQuery] = []
    # The rows by their keys, then the queries by their ids: joined in one statement,
    # SQLite read every message the authority had received to find them (issue 14).
    for start in range(0, len(wanted), 500):
        # (By their keys alone: with the direction and authority beside them, SQLite
        # took those for the search.)
        sent = {
            (sender, message_id)
            for sender, message_id, direction, of in conn.execute(
                select(
                    messages.c.sender,
                    messages.c.message_id,
                    messages.c.direction,
                    messages.c.authority,
                ).where(messages.c.id.in_(wanted[start : start + 500]))
            )
            if direction == Direction.INBOUND.value and of == authority
        }
        if not sent:
            continue
        rows = conn.execute(
            select(existence_held)
            .where(
                c.message_id.in_(sorted({message_id for _, message_id in sent})),
                c.authority == authority,
                _unfinished(),
            )
            .order_by(c.id)
        )
        found += [q for q in map(_of, rows) if (q.requester, q.message_id) in sent]
    return found


def naming(conn: Connection, authority: str, hashes: Collection[str]) -> list[HeldQuery]:
    """``authority``'s held queries with personal fields that name any of ``hashes``
    (decided or not). Few rows: a held query waits for a person, and goes at its
    retention period."""
    wanted = set(hashes)
    if not wanted:
        return []
    rows = conn.execute(
        select(existence_held)
        .where(existence_held.c.authority == authority, _personal())
        .order_by(existence_held.c.id)
    )
    return [q for q in map(_of, rows) if wanted.intersection(q.hashes)]


def scrub(
    conn: Connection,
    authority: str,
    queries: Sequence[HeldQuery],
    close_as: str,
    by: str,
    now: datetime,
) -> list[HeldQuery]:
    """Erase the personal fields of ``queries`` (hashes, approver, role, reason); close
    those still undecided as ``close_as``, by ``by`` at ``now``. The ones closed now.

    Closed under the same condition ``decide`` takes its decision with: a coordinator's
    decision that came first stands, and the row is scrubbed either way.
    """
    closed = []
    for query in queries:
        this_one = (
            existence_held.c.authority == authority,
            existence_held.c.message_id == query.message_id,
        )
        if query.decision is None:
            done = conn.execute(
                sql_update(existence_held)
                .where(*this_one, existence_held.c.decision.is_(None))
                .values(decision=close_as, decided_by=by, decided_at=now)
            )
            if done.rowcount == 1:
                closed.append(query)
        conn.execute(
            sql_update(existence_held)
            .where(*this_one)
            .values(hashes="", approver=None, approver_role=None, reason=None)
        )
    return closed
