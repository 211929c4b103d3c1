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
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from gateway.ledger.wal_sync import WalSync, fsync_path

__all__ = ["WAIT_S", "serialize_writers", "wait_durable"]

WAIT_S = 30.0  # as long as the ledger's SQLite busy timeout

# Statements before which pysqlite begins a write transaction (and DDL).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN")


class _Turn:
    """Whose turn it is to write: at most one DBAPI connection of the process."""

    def __init__(self, sync: WalSync) -> None:
        self.changed = threading.Condition()
        self.owner: Any = None
        self.waiting = 0  # connections queued for the turn
        self.sync = sync
        self.ticket = 0  # the owner's commit ticket, once it began to commit

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

    def committing(self, dbapi_conn: Any) -> None:
        """The owner's commit is about to run: it takes a ticket (others wrote nothing)."""
        with self.changed:
            if self.owner is dbapi_conn:
                self.ticket = self.sync.issue()

    def give_back(self, dbapi_conn: Any) -> None:
        with self.changed:
            if self.owner is dbapi_conn:
                if self.ticket:
                    self.sync.complete(self.ticket)
                    self.ticket = 0
                self.owner = None
                self.changed.notify_all()


_TURNS: dict[str, _Turn] = {}
_TURNS_LOCK = threading.Lock()
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, _Turn] = weakref.WeakKeyDictionary()


def _turn_for(database: str, wait_s: float) -> _Turn:
    with _TURNS_LOCK:
        turn = _TURNS.get(database)
        if turn is None:
            wal = Path(database + "-wal")
            turn = _TURNS[database] = _Turn(WalSync(lambda: fsync_path(wal), wait_s))
        return turn


def wait_durable(engine: Engine) -> None:
    """Return once every commit a transaction that just ended made or could have
    read is on disk (no-op for an engine whose writers do not take turns).

    That is every commit begun so far: a reader may have read the newest one
    before its flush. A writer may so wait for a commit begun after its own,
    which returns within moments (it writes the log, it does not flush it),
    rather than keep track of which transaction was whose.
    """
    turn = _BY_ENGINE.get(engine)
    if turn is not None:
        turn.sync.wait(turn.sync.issued)


def serialize_writers(engine: Engine, wait_s: float = WAIT_S) -> None:
    """Make ``engine``'s writers (a SQLite file) take turns through the process's queue.

    Engines on the same file in one process share the queue.
    """
    turn = _turn_for(str(engine.url.database), wait_s)
    _BY_ENGINE[engine] = turn

    def before_cursor_execute(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            turn.take(conn.connection.dbapi_connection, wait_s)

    def commit(conn: Any) -> None:
        turn.committing(conn.connection.dbapi_connection)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        turn.give_back(dbapi_conn)

    def invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        turn.give_back(dbapi_conn)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "commit", commit)
    event.listen(engine, "checkin", checkin)
    event.listen(engine, "invalidate", invalidate)
