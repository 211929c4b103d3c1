"""The existence index's store: keyed hashes of the children an authority holds a CAF for.

Only HMAC-keyed hashes of identifiers are kept (``policy.existence``), so
the index answers "do we hold this child?" without holding who it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    select,
)

from gateway.crossborder.tables import metadata
from gateway.ledger.deferred import DeferredInserts

existence_index = Table(
    "existence_index",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("keyed_hash", String(64), nullable=False),
    Column("correlation_id", String(64), nullable=False),
)
Index("ix_existence_hash", existence_index.c.authority, existence_index.c.keyed_hash)
# An erasure's entries of the child's threads (migration 0010; before, every entry of
# the authority was read).
Index("ix_existence_thread", existence_index.c.authority, existence_index.c.correlation_id)


# Built once (bound parameters, "expanding" IN): one read per case, found in
# SQLAlchemy's compiled cache. The rows themselves wait for the end of the
# transaction and go in together (``gateway.ledger.deferred``): one INSERT per
# received batch or accepted upload, not one per case. Every other statement
# here on the index writes them first.
_KNOWN = select(existence_index.c.keyed_hash).where(
    existence_index.c.authority == bindparam("authority"),
    existence_index.c.correlation_id == bindparam("correlation_id"),
    existence_index.c.keyed_hash.in_(bindparam("hashes", expanding=True)),
)
_ROWS = DeferredInserts(existence_index)


def index_child(
    conn: Connection, authority: str, correlation_id: str, hashes: Iterable[str]
) -> None:
    """Remember that ``authority`` holds a CAF for the child with these hashes."""
    wanted = list(dict.fromkeys(hashes))
    if not wanted:
        return
    known = {
        r[0]
        for r in conn.execute(
            _KNOWN, {"authority": authority, "correlation_id": correlation_id, "hashes": wanted}
        )
    }
    # and those this transaction added and has not written yet
    known.update(
        row["keyed_hash"]
        for row in _ROWS.pending(conn)
        if row["authority"] == authority and row["correlation_id"] == correlation_id
    )
    _ROWS.add(
        conn,
        [
            {"authority": authority, "keyed_hash": value, "correlation_id": correlation_id}
            for value in wanted
            if value not in known
        ],
    )


def flush(conn: Connection) -> None:
    """Write the rows pending on ``conn`` (before any other statement on the index)."""
    _ROWS.flush(conn)


def holds(conn: Connection, authority: str, hashes: Iterable[str]) -> bool:
    wanted = list(hashes)
    if not wanted:
        return False
    flush(conn)
    row = conn.execute(
        select(existence_index.c.id).where(
            existence_index.c.authority == authority,
            existence_index.c.keyed_hash.in_(wanted),
        )
    ).first()
    return row is not None
