"""Held existence queries under retention and erasure (``crossborder.existence_held``).

A safeguarding-basis query held for the coordinator keeps the keyed hashes of a
child's identifiers and the asking approver's name, role and reason. They go:

- past ``retention.existence_held_days`` since the query's last change (``expire``,
  the retention job): a query still undecided then is closed ``EXPIRED``;
- when the child it names is no longer held here (``erase_about``: every case thread
  that named the child erased, by a retention purge or an erasure request): a query
  still undecided is closed ``ERASED``; an erasure request also erases the query as
  received (``messages_naming``: its body carries the same hashes and reason).

A query closed either way is answered with nothing, as a refused one is (the
asking authority's coordinator sees no answer), and audited; the row keeps who
asked, when, its decision and who or what made it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, false, or_, select

from gateway.crossborder import existence_held, existence_store
from gateway.crossborder.existence_held import ERASED, EXPIRED, HeldQuery
from gateway.crossborder.existence_store import existence_index
from gateway.feature import Kit
from gateway.ledger import audit
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.model import LegalBasis

COUNT = "existence_held_queries"


def due(kit: Kit, conn: Connection, authority: str, now: datetime) -> list[HeldQuery]:
    """``authority``'s held queries past ``existence_held_days`` (at most ``batch``)."""
    rules = kit.settings.retention
    cutoff = now - timedelta(days=rules.existence_held_days)
    return existence_held.past(conn, authority, cutoff, rules.batch)


def expire(kit: Kit, conn: Connection, authority: str, now: datetime, actor: str) -> dict[str, int]:
    """Scrub the held queries past their period, closing the undecided ``EXPIRED``."""
    found = due(kit, conn, authority, now)
    days = kit.settings.retention.existence_held_days
    closed = existence_held.scrub(conn, authority, found, EXPIRED, actor, now)
    _audit(
        kit,
        conn,
        closed,
        "EXISTENCE_QUERY_EXPIRED",
        actor,
        f"not answered: undecided for {days} days (retention.existence_held_days)",
    )
    return {COUNT: len(found)} if found else {}


def erase_about(
    kit: Kit,
    conn: Connection,
    authority: str,
    threads: Collection[str],
    now: datetime,
    actor: str,
    run_id: str,
) -> dict[str, int]:
    """Scrub the held queries naming a child no longer held once ``threads`` are erased,
    closing the undecided ``ERASED``. Before the threads' index entries go."""
    found = naming_erased(conn, authority, threads)
    closed = existence_held.scrub(conn, authority, found, ERASED, actor, now)
    _audit(
        kit,
        conn,
        closed,
        "EXISTENCE_QUERY_ERASED",
        actor,
        f"not answered: the child it asks about was erased here (run {run_id})",
    )
    return {COUNT: len(found)} if found else {}


def naming_erased(conn: Connection, authority: str, threads: Collection[str]) -> list[HeldQuery]:
    """Held queries naming a child whose index entries are all on ``threads``."""
    return existence_held.naming(conn, authority, _hashes_gone(conn, authority, threads))


def messages_naming(queries: Sequence[HeldQuery]) -> ColumnElement[bool]:
    """The ledger rows of ``queries`` as received (for ``erasure.due_where``)."""
    if not queries:
        return false()
    return or_(
        *(
            and_(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.sender == q.requester,
                messages.c.message_id == q.message_id,
            )
            for q in queries
        )
    )


def _hashes_gone(conn: Connection, authority: str, threads: Collection[str]) -> set[str]:
    """Keyed hashes indexed for ``threads`` that no other thread of ``authority`` holds:
    a child kept on another case thread is still held, and so still asked about."""
    if not threads:
        return set()
    existence_store.flush(conn)  # rows this transaction added count too
    listed = list(threads)
    hashes = {
        r[0]
        for r in conn.execute(
            select(existence_index.c.keyed_hash).where(
                existence_index.c.authority == authority,
                existence_index.c.correlation_id.in_(listed),
            )
        )
    }
    if not hashes:
        return set()
    kept = {
        r[0]
        for r in conn.execute(
            select(existence_index.c.keyed_hash).where(
                existence_index.c.authority == authority,
                existence_index.c.keyed_hash.in_(sorted(hashes)),
                existence_index.c.correlation_id.not_in(listed),
            )
        )
    }
    return hashes - kept


def _audit(
    kit: Kit,
    conn: Connection,
    closed: Sequence[HeldQuery],
    action: str,
    actor: str,
    said: str,
) -> None:
    if not closed:
        return
    audit.append(
        kit.ledger,
        [
            audit.AuditEvent(
                actor=actor[:128],
                action=action,
                authority=q.authority,
                counterparty=q.requester,
                legal_basis=LegalBasis.SAFEGUARDING.value,
                message_id=q.message_id,
                digest=q.digest,
                detail=f"{said}; its hashes, approver and reason erased"[:500],
            )
            for q in closed
        ],
        conn,
    )
