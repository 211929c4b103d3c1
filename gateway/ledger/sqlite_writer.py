"""One SQLite writer at a time within the process, handed over the moment it is free.

SQLite lets one transaction write at a time; the others wait in its busy
handler, which does not wake when the lock is released but sleeps 1, 2, 5,
10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries. A gateway's threads
(consumer, sender, receipts, the API) all write the one ledger, so under a
steady load a message paid some of those sleeps at every hop: a fixed wait
on the delivery path that grows with the load (issue 14).

Here the process's writers queue on a condition instead: a connection takes
the writer's turn just before its first write statement (where pysqlite
begins SQLite's write transaction) and gives it back when it returns to the
pool, after its commit or rollback; the next writer starts at once. Readers
are not held (WAL: they never wait for the writer). Writers in another
process (``cafgw send`` beside a running gateway) still meet SQLite's busy
handler, as before. A connection that waits longer than ``WAIT_S`` (a
transaction writing on a second connection while its first one holds the
turn, which SQLite itself would refuse after its busy timeout) goes on
without the turn and leaves the waiting to SQLite, as before.

pysqlite begins a transaction only before a statement whose first word is
INSERT, UPDATE, DELETE or REPLACE: an ``UPDATE`` with a ``WITH`` clause (the
outbox claim) or a ``SAVEPOINT`` ran on its own, committed at once, outside
the turn. A write statement SQLAlchemy compiled (``context.isinsert`` and so
on) and a ``SAVEPOINT`` now take the turn and, outside a transaction, begin
one first (not on a connection in the driver's autocommit, which nothing
would commit).

The turn also ends before the commit's flush to disk: the connections
commit with ``synchronous=NORMAL``, every commit that wrote takes a ticket
just before the driver's commit and completes it when that returns
(``wal_sync``), and ``wait_durable`` (called by ``Ledger.transaction()`` once
the connection is back in the pool) flushes the log once for every commit
made meanwhile (group commit). A commit wrote if a write or DDL statement
ran on its connection, if it held the turn, or if its count of changed rows
(``total_changes``) moved: a writer that went on without the turn is flushed
too. Left: a ``text()`` statement such as ``WITH ... INSERT`` that pysqlite
runs on its own commits before any ticket (flushed at its connection's
checkin); the gateway runs none.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

from gateway.ledger.wal_sync import WalSync, fsync_path

__all__ = ["WAIT_S", "begin_writing", "commits_begun", "serialize_writers", "wait_durable"]

WAIT_S = 30.0  # as long as the ledger's SQLite busy timeout

# Statements before which pysqlite begins a write transaction (and DDL).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN")
# On the pooled connection's ``info``: its ``total_changes`` at its last commit
# or checkin, and whether a write or DDL statement ran since its last commit.
_CHANGES = "cafgw_wal_changes"
_WROTE = "cafgw_wal_wrote"


class _Turn:
    """Whose turn it is to write: at most one DBAPI connection of the process."""

    def __init__(self, sync: WalSync) -> None:
        self.changed = threading.Condition()
        self.owner: Any = None
        self.waiting = 0  # connections queued for the turn
        self.sync = sync

    def take(self, dbapi_conn: Any, wait_s: float) -> None:
        with self.changed:
            if self.owner is dbapi_conn:
                return
            self.waiting += 1
            self.changed.notify_all()
            try:
                if self.changed.wait_for(lambda: self.owner is None, wait_s):
                    self.owner = dbapi_conn
            finally:
                self.waiting -= 1

    def reset(self) -> None:
        """Free, with no commit pending (a forked child's copy)."""
        self.changed = threading.Condition()
        self.owner = None
        self.waiting = 0
        self.sync.reset()

    def give_back(self, dbapi_conn: Any) -> None:
        with self.changed:
            if self.owner is dbapi_conn:
                self.owner = None
                self.changed.notify_all()


_TURNS: dict[str, _Turn] = {}
_TURNS_LOCK = threading.Lock()
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, _Turn] = weakref.WeakKeyDictionary()


def _turn_for(database: str, wait_s: float) -> _Turn:
    # Absolute, fixed now: a relative path would follow a later chdir to a log that
    # is not this database's (and a missing log counts as flushed), and the same
    # file named two ways would get two turns.
    path = os.path.abspath(database)
    with _TURNS_LOCK:
        turn = _TURNS.get(path)
        if turn is None:
            wal = Path(path + "-wal")
            turn = _TURNS[path] = _Turn(WalSync(lambda: fsync_path(wal), wait_s))
        return turn


def wait_durable(engine: Engine, upto: int | None = None) -> None:
    """Return once every commit a transaction that just ended made or could have
    read is on disk (no-op for an engine whose writers do not take turns).

    That is every commit begun so far: a reader may have read the newest one
    before its flush. A writer may so wait for a commit begun after its own,
    which returns within moments (it writes the log, it does not flush it),
    rather than keep track of which transaction was whose. ``upto``: only the
    commits begun before ``commits_begun`` said so (a transaction rolled back
    after reading: its own rollback needs no flush).
    """
    turn = _BY_ENGINE.get(engine)
    if turn is not None:
        turn.sync.wait(turn.sync.issued if upto is None else upto)


def commits_begun(engine: Engine) -> int | None:
    """How many commits have begun so far (what a transaction could have read by
    now), for ``wait_durable(upto=...)``; None for an engine without turns."""
    turn = _BY_ENGINE.get(engine)
    return None if turn is None else turn.sync.issued


def begin_writing(conn: Connection) -> None:
    """Take the write lock for the rest of ``conn``'s transaction now (SQLite: the
    process's turn, then ``BEGIN IMMEDIATE``), unless it already writes.

    For a transaction that reads what its writes depend on (the audit chain's
    head before the entries after it): read before its first write, the row
    may be stale by the time the write takes the turn, as another writer of
    this process or another one committed in between.
    """
    driver = conn.connection.dbapi_connection
    if driver is not None and not getattr(driver, "in_transaction", True):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _locks_rows(context: Any) -> bool:
    """Whether the statement is a locking read (``select(...).with_for_update()``)."""
    compiled = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    return getattr(statement, "_for_update_arg", None) is not None


def serialize_writers(engine: Engine, wait_s: float = WAIT_S) -> None:
    """Make ``engine``'s writers (a SQLite file) take turns through the process's queue,
    and ticket their commits for the shared flush (``wait_durable``).

    Engines on the same file in one process share the queue.
    """
    turn = _turn_for(str(engine.url.database), wait_s)
    _BY_ENGINE[engine] = turn

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        dml = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        head = statement.lstrip()[:9].upper()
        if not dml and _locks_rows(context):
            # SQLite has no FOR UPDATE (SQLAlchemy leaves it out): the rows read are
            # held as PostgreSQL holds them by holding the whole database's write lock
            # from this read on, so a decision taken on them is not made stale by a
            # writer that commits before this transaction's first write.
            pooled = conn.connection
            dbapi_conn = pooled.dbapi_connection
            if not dbapi_conn.in_transaction and dbapi_conn.isolation_level is not None:
                pooled.info[_WROTE] = True
                turn.take(dbapi_conn, wait_s)
                cursor.execute("BEGIN IMMEDIATE")
        elif dml or head.startswith((*_WRITES, "SAVEPOINT")):
            pooled = conn.connection
            dbapi_conn = pooled.dbapi_connection
            pooled.info[_WROTE] = True  # ticketed at its commit, turn or no turn
            savepoint = head.startswith("SAVEPOINT")
            turn.take(dbapi_conn, wait_s)
            # pysqlite begins no transaction before WITH ... UPDATE (the outbox claim)
            # or SAVEPOINT, which then commit on their own, before any ticket; with
            # the driver in autocommit (isolation_level None) nothing would commit it.
            if (
                (dml or savepoint)
                and not dbapi_conn.in_transaction
                and dbapi_conn.isolation_level is not None
            ):
                cursor.execute("BEGIN")

    original_do_commit = engine.dialect.do_commit

    def do_commit(pooled: Any) -> None:
        # The ticket is taken just before the driver's commit and completed the
        # moment it returns (or fails): a connection kept after its commit holds
        # up no flush.
        dbapi_conn = pooled.dbapi_connection
        changes = dbapi_conn.total_changes
        wrote = pooled.info.pop(_WROTE, False)
        moved = changes != pooled.info.get(_CHANGES, 0)
        pooled.info[_CHANGES] = changes
        ticket = turn.sync.issue() if wrote or moved or turn.owner is dbapi_conn else None
        try:
            original_do_commit(pooled)
        finally:
            if ticket is not None:
                turn.sync.complete(ticket)

    engine.dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]

    def checkin(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info.pop(_WROTE, None)
            if dbapi_conn is not None:
                changes = dbapi_conn.total_changes
                if changes != record.info.get(_CHANGES, 0):
                    # Changed without a commit SQLAlchemy saw (a statement pysqlite ran
                    # on its own, or rolled back): flushed like a commit, to be sure.
                    turn.sync.complete(turn.sync.issue())
                record.info[_CHANGES] = changes
        turn.give_back(dbapi_conn)

    def invalidate(dbapi_conn: Any, record: Any, _exc: Any) -> None:
        if record is not None:
            # The next DBAPI connection of this record counts its changes from 0.
            record.info.pop(_CHANGES, None)
            record.info.pop(_WROTE, None)
        turn.give_back(dbapi_conn)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "checkin", checkin)
    event.listen(engine, "invalidate", invalidate)


def _reset_after_fork() -> None:
    """A forked child (the schema upgrade, ``ledger.apart``) starts with every turn free
    and no commit pending: the parent's turns may be held, mid-flush, or locked by
    a thread the child does not have. Engines the child inherited keep working."""
    global _TURNS_LOCK  # noqa: PLW0603 (a lock held at the fork can never be released)
    _TURNS_LOCK = threading.Lock()
    for turn in _TURNS.values():
        turn.reset()


os.register_at_fork(after_in_child=_reset_after_fork)
