"""Up to where a ledger's ids can be read as a cursor.

On PostgreSQL ids are handed out before commit, so a row with a lower id can
become visible after one with a higher id: a reader that moved a cursor past
the highest id it saw would skip the late one for good. Such a reader stops
``LAG_S`` seconds short of now there, and reads a row once it is that old.
SQLite has one writer at a time, so its ids become visible in order and
there is no lag.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

LAG_S = 15.0


def visible_bound(conn: Connection, now: datetime) -> datetime | None:
    """The newest time up to which ``conn``'s rows are visible in id order (None: all)."""
    if conn.dialect.name == "sqlite":
        return None
    return now - timedelta(seconds=LAG_S)
