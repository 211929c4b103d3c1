"""PostgreSQL advisory locks for replicas of one gateway on one ledger.

Several gateway processes (replicas) may share a PostgreSQL ledger. Where two
of them could do the same thing at once (migrate the schema, record the same
received message), a transaction-scoped advisory lock named after the thing
makes the second wait for the first to commit, and then see what it did.

On SQLite there is only ever one gateway process (``gateway.ledger.single``
refuses a second), but its threads (the consumer, the API's workers, the
receipt and handover loops) record at once: there the lock is the database's
one write lock, taken from the call on (``begin_writing``), which gives the
same guarantee for every name at once. Read before the transaction's first
write without it, what the transaction decides on may already be stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Connection, text

from gateway.ledger.sqlite_writer import begin_writing

# Migrating the schema (gateway.ledger.migrate): one process at a time, the others
# then find it done.
SCHEMA = "cafgw:schema"
# Signing receipts (gateway.services.receipts): one replica at a time, the others
# skip their turn, so each receipt covers what all of them recorded meanwhile.
RECEIPTS = "cafgw:receipts"


def thread(owner: str, correlation_id: str) -> str:
    """The lock on ``owner``'s case thread ``correlation_id``: taken by whatever decides
    on the thread's state (recording a received message about it, accepting a
    local record of it, recalling or correcting a message on it)."""
    return f"thread:{owner}:{correlation_id}"


def key(name: str) -> int:
    """A stable signed 64-bit lock key for ``name`` (PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def xact_lock(conn: Connection, names: Iterable[str]) -> None:
    """Hold advisory locks on ``names`` until ``conn``'s transaction ends (PostgreSQL only).

    Taken in ascending key order in one statement, so two transactions
    locking overlapping sets never deadlock on each other's locks. Call it
    first in the transaction, before any row is locked. On SQLite: the write lock.
    """
    if conn.dialect.name == "sqlite":
        begin_writing(conn)
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({key(n) for n in names})
    if not keys:
        return
    conn.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT k FROM unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY k) AS ordered"
        ),
        {"keys": keys},
    )


def try_xact_lock(conn: Connection, name: str) -> bool:
    """Take the advisory lock on ``name`` until ``conn``'s transaction ends, if no other
    transaction holds it; whether it was taken (PostgreSQL; on SQLite the write lock is
    waited for, and so always taken)."""
    if conn.dialect.name == "sqlite":
        begin_writing(conn)
    if conn.dialect.name != "postgresql":
        return True
    taken = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key(name)})
    return bool(taken.scalar())
