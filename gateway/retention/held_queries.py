"""Held existence queries under retention and erasure (``crossborder.existence_held``).

A safeguarding-basis query held for the coordinator keeps the keyed hashes of a
child's identifiers and the asking approver's name, role and reason, in its row
and in the query as received (its ledger row's body). Both go, in the purge's
transaction (``purge.erase_in``):

- past ``retention.existence_held_days`` since the query's last change (``past``,
  planned by the retention job): a query still undecided then is closed ``EXPIRED``;
- once the child it names is no longer held here (``naming_erased``: a case thread
  that named the child erased, by a retention purge or an erasure request, and no
  other thread naming any of the query's hashes left), or once the query as
  received is erased by any purge (a rule of its own, its sender's erasure request):
  a query still undecided is closed ``ERASED``.

A query closed either way is answered with nothing, as a refused one is (the
asking authority's coordinator sees no answer), and audited; the row keeps who
asked, when, its decision and who or what made it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, false, or_, select

from gateway.crossborder import existence_held, existence_store
from gateway.crossborder.existence_held import ERASED, EXPIRED, HeldQuery
from gateway.crossborder.existence_store import existence_index
from gateway.feature import Kit
from gateway.ledger import audit
from gateway.model import LegalBasis
from gateway.retention.plan import Due, due_where, emptied

COUNT = "existence_held_queries"
RULE = "existence_held_days"
ERASED_CHILD_RULE = "existence query about an erased child"


@dataclass(frozen=True)
class Scrubbed:
    """What one purge did to held queries: those past their period, those naming an
    erased child, and their ledger rows as received, erased with them."""

    expired: tuple[HeldQuery, ...] = ()
    erased: tuple[HeldQuery, ...] = ()
    received: tuple[Due, ...] = ()
    """The rows as received of ``expired`` and ``erased`` not yet erased."""
    withdrawn: tuple[HeldQuery, ...] = ()
    """Those whose row as received this purge erased already."""


def past(kit: Kit, conn: Connection, authority: str, now: datetime) -> list[HeldQuery]:
    """``authority``'s held queries past ``existence_held_days`` (at most ``batch``)."""
    rules = kit.settings.retention
    cutoff = now - timedelta(days=rules.existence_held_days)
    return existence_held.past(conn, authority, cutoff, rules.batch)


def naming_erased(conn: Connection, authority: str, threads: Collection[str]) -> list[HeldQuery]:
    """Held queries about a child no longer held here once ``threads`` are erased: they
    name a keyed hash indexed on ``threads``, and none of theirs is indexed elsewhere
    (a child's other case may carry fewer of its identifiers: a query naming any of
    them is still about a child held here)."""
    if not threads:
        return []
    existence_store.flush(conn)  # rows this transaction added count too
    listed = list(threads)
    erased = _indexed(conn, authority, existence_index.c.correlation_id.in_(listed))
    found = existence_held.naming(conn, authority, erased)
    if not found:
        return []
    named = sorted({h for q in found for h in q.hashes})
    kept = _indexed(
        conn,
        authority,
        existence_index.c.keyed_hash.in_(named),
        existence_index.c.correlation_id.not_in(listed),
    )
    return [q for q in found if not kept.intersection(q.hashes)]


def foreseen(
    conn: Connection, authority: str, due: Sequence[Due], expired: Sequence[HeldQuery]
) -> list[HeldQuery]:
    """Held queries (other than ``expired``) that a run erasing ``due`` would close or
    scrub as about a child no longer held here: ``naming_erased`` of the threads that
    run leaves with no message unerased. For a dry run; nothing is changed. (A query
    whose own thread such a run empties, and what that thread indexed, is not
    followed further: the run itself does, and counts what it did.)"""
    gone = {q.message_id for q in expired}
    found = naming_erased(
        conn, authority, emptied(conn, authority, {d.correlation_id for d in due}, due)
    )
    return [q for q in found if q.message_id not in gone]


def received(
    conn: Connection, authority: str, queries: Sequence[HeldQuery], rule: str
) -> list[Due]:
    """The ledger rows of ``queries`` as received, not yet erased, as due under ``rule``."""
    return due_where(conn, authority, _as_received(queries), rule) if queries else []


def scrub(
    kit: Kit,
    conn: Connection,
    authority: str,
    *,
    expired: Sequence[HeldQuery],
    threads: Collection[str],
    rows: Collection[int],
    now: datetime,
    actor: str,
    run_id: str,
) -> Scrubbed:
    """Scrub ``expired`` (closing the undecided ``EXPIRED``), the queries naming a child
    erased with ``threads``, and those whose row as received is one of ``rows`` (erased
    by this purge), closing the undecided ``ERASED``; audit those closed. Before the
    threads' index entries go. The rows as received not yet erased are for the caller
    to erase (``Scrubbed.received``)."""
    gone = {q.message_id for q in expired}
    erased = [q for q in naming_erased(conn, authority, threads) if q.message_id not in gone]
    gone.update(q.message_id for q in erased)
    withdrawn = [
        q for q in existence_held.received_as(conn, authority, rows) if q.message_id not in gone
    ]
    days = kit.settings.retention.existence_held_days
    for queries, close_as, action, said in (
        (
            expired,
            EXPIRED,
            "EXISTENCE_QUERY_EXPIRED",
            f"not answered: undecided for {days} days (retention.existence_held_days)",
        ),
        (
            erased,
            ERASED,
            "EXISTENCE_QUERY_ERASED",
            f"not answered: the child it asks about was erased here (run {run_id})",
        ),
        (
            withdrawn,
            ERASED,
            "EXISTENCE_QUERY_ERASED",
            f"not answered: the query as received was erased here (run {run_id})",
        ),
    ):
        closed = existence_held.scrub(conn, authority, queries, close_as, actor, now)
        _audit(kit, conn, closed, action, actor, said)
    due = received(conn, authority, expired, RULE)
    due += received(conn, authority, erased, ERASED_CHILD_RULE)
    return Scrubbed(tuple(expired), tuple(erased), tuple(due), tuple(withdrawn))


def _indexed(conn: Connection, authority: str, *where: ColumnElement[bool]) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            select(existence_index.c.keyed_hash).where(
                existence_index.c.authority == authority, *where
            )
        )
    }


def _as_received(queries: Sequence[HeldQuery]) -> ColumnElement[bool]:
    if not queries:
        return false()
    return or_(*(existence_held.as_received(q.requester, q.message_id) for q in queries))


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
