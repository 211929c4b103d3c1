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
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["WAIT_S", "serialize_writers"]

WAIT_S = 30.0  # as long as the ledger's SQLite busy timeout

# Statements before which pysqlite begins a write transaction (and DDL).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN")


class _Turn:
    """Whose turn it is to write: at most one DBAPI connection of the process."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.owner: Any = None
        self.waiting = 0  # connections queued for the turn

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

    def give_back(self, dbapi_conn: Any) -> None:
        with self.changed:
            if self.owner is dbapi_conn:
                self.owner = None
                self.changed.notify_all()


_TURNS: dict[str, _Turn] = {}
_TURNS_LOCK = threading.Lock()


def _turn_for(database: str) -> _Turn:
    with _TURNS_LOCK:
        return _TURNS.setdefault(database, _Turn())


def serialize_writers(engine: Engine, wait_s: float = WAIT_S) -> None:
    """Make ``engine``'s writers (a SQLite file) take turns through the process's queue.

    Engines on the same file in one process share the queue.
    """
    turn = _turn_for(str(engine.url.database))

    def before_cursor_execute(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            turn.take(conn.connection.dbapi_connection, wait_s)

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        turn.give_back(dbapi_conn)

    def invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        turn.give_back(dbapi_conn)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "checkin", checkin)
    event.listen(engine, "invalidate", invalidate)
