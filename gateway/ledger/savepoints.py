"""Work that may fail inside a transaction without failing it: a savepoint that never
hides a lost transaction.

A batch's transaction signs its receipt, and marks the receipts of earlier batches
sent, each in a savepoint (``services.receiving.pipeline``): if that part fails, it
is rolled back alone and left for later, and the batch is still recorded. But
SQLite rolls a whole transaction back by itself on some errors (disk full, an I/O
error, out of memory); rolling back to the savepoint then fails, or finds no
transaction. Going on would begin a new one and commit only what follows, and the
batch would be acknowledged with its messages never recorded. So that case raises:
the database's own error when rolling back to the savepoint failed
(``Ledger.transaction()`` turns it into ``LedgerUnavailableError`` for an outage,
whose batch is held, else ``LedgerError``), ``LedgerError`` when SQLite no longer
holds the transaction; the batch is retried, never acknowledged unrecorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import LedgerError

__all__ = ["Failed", "in_savepoint"]

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """What ``work`` raised; its savepoint was rolled back, the transaction goes on."""

    error: Exception


def in_savepoint(conn: Connection, work: Callable[[], T], what: str) -> T | Failed:
    """``work()`` in a savepoint of ``conn``'s transaction, or ``Failed`` if it raised
    (rolled back to the savepoint). If the failure took the whole transaction with
    it: the database's error from rolling back, or ``LedgerError`` naming ``what``."""
    savepoint = conn.begin_nested()
    try:
        result = work()
    except Exception as exc:  # why everything: the caller's transaction must go on
        try:
            savepoint.rollback()
        except SQLAlchemyError:
            # The transaction is gone (with its connection, or SQLite ended it):
            # ``Ledger.transaction()`` says which, an outage held or a failure retried.
            raise
        except Exception as lost:  # why everything: any failure here loses the transaction
            raise LedgerError(
                f"{what} failed ({type(exc).__name__}) and took the transaction with it "
                f"({type(lost).__name__})"
            ) from exc
        if not _in_transaction(conn):
            raise LedgerError(
                f"{what} failed ({type(exc).__name__}) and the database rolled the transaction back"
            ) from exc
        return Failed(exc)
    savepoint.commit()
    return result


def _in_transaction(conn: Connection) -> bool:
    """Whether the database still holds ``conn``'s transaction (SQLite may have rolled it
    back by itself; PostgreSQL keeps it until told, or fails the rollback above)."""
    if conn.dialect.name != "sqlite":
        return True
    driver = conn.connection.driver_connection
    return bool(getattr(driver, "in_transaction", True))
