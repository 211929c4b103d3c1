"""Rows appended to a table at the end of the transaction: one statement per table.

A received batch writes a case-log line and existence-index rows for each
message, an accepted upload for each record: one INSERT each, hundreds per
transaction. Append-only rows that nothing in the same transaction needs
until it reads that table can wait and go in together just before the commit
(``LedgerCore.before_commit``), in the order they were added.

The module that owns the table keeps the promise that makes this invisible:
every statement of its own on that table, read or delete, first writes what
is pending on the connection (``flush``), so the transaction sees its own
rows where it looks, in the order it added them. A connection that is not
inside ``LedgerCore.transaction()`` gets its rows written at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Table, insert

from gateway.ledger.core import LedgerCore


class DeferredInserts:
    """Pending rows of one table, per connection."""

    def __init__(self, table: Table) -> None:
        self._insert = insert(table)
        self._pending: WeakKeyDictionary[Connection, list[dict[str, Any]]] = WeakKeyDictionary()

    def add(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` (in order) before ``conn``'s transaction commits."""
        if not rows:
            return
        pending = self._pending.get(conn)
        if pending is None:
            if not LedgerCore.before_commit(conn, self.flush):
                conn.execute(self._insert, list(rows))
                return
            pending = self._pending[conn] = []
        pending.extend(rows)

    def pending(self, conn: Connection) -> list[dict[str, Any]]:
        """The rows added on ``conn`` and not written yet."""
        return list(self._pending.get(conn, ()))

    def flush(self, conn: Connection) -> None:
        """Write what is pending on ``conn`` now, in one statement."""
        rows = self._pending.pop(conn, None)
        if rows:
            conn.execute(self._insert, rows)
