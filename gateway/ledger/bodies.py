"""Where a message's signed body is, and how the code reads and erases it.

The bodies are in ``message_bodies``, one row per message that has one,
written with the message and never rewritten (``tables.message_bodies``); a
message without a body (recorded without one, or erased) has no row there.
Reads name the body as a column of ``messages`` would be (``BODY``, None when
there is none) and filter on whether there is one (``HAS_BODY``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    ColumnClause,
    Connection,
    Integer,
    delete,
    exists,
    insert,
    literal_column,
    select,
    update,
)

from gateway.ledger.tables import message_bodies, messages

_CHUNK = 500  # ids a statement names (``without_body``)

# The key of the enclosing statement's ``messages`` row, named with its table: in
# ``UPDATE ... RETURNING`` SQLAlchemy writes SQLite's columns without their tables, so
# a correlated ``messages.c.id`` came out as a bare ``id``, which a column of that name
# in ``message_bodies`` would silently capture (every row its first body).
_MESSAGE_KEY: ColumnClause[int] = literal_column("messages.id", Integer)

BODY = (
    select(message_bodies.c.body)
    .where(message_bodies.c.message_pk == _MESSAGE_KEY)
    .scalar_subquery()
    .label("body")
)
"""The body of the ``messages`` row in the enclosing statement, or None: a column to
select or return alongside ``messages``' own."""

HAS_BODY = exists().where(message_bodies.c.message_pk == messages.c.id)
"""The ``messages`` row in the enclosing statement has a body (``body IS NOT NULL`` before
the bodies had a table of their own)."""

WITH_BODY = messages.join(message_bodies, message_bodies.c.message_pk == messages.c.id)
"""``messages`` that have a body, joined to it (``message_bodies.c.body``): for reads that
want only those."""


def without_body(conn: Connection, pks: Sequence[int]) -> set[int]:
    """Of the messages ``pks``, those that have no body: for a dead letter, whose
    body was erased here (retention, an erasure), so that there is nothing to replay."""
    found: set[int] = set()
    for first in range(0, len(pks), _CHUNK):
        chosen = list(pks[first : first + _CHUNK])
        rows = conn.execute(select(messages.c.id).where(messages.c.id.in_(chosen), ~HAS_BODY))
        found.update(int(pk) for (pk,) in rows.all())
    return found


def erase(conn: Connection, pks: Sequence[int]) -> int:
    """Erase the bodies of the messages ``pks``; how many had one."""
    if not pks:
        return 0
    done = conn.execute(delete(message_bodies).where(message_bodies.c.message_pk.in_(list(pks))))
    return int(done.rowcount)


def replace(conn: Connection, pk: int, body: bytes | None) -> None:
    """Give message ``pk`` the body ``body`` (None: none) in place of the one it has, if
    any: a held copy signed afresh on its release, the one change of a body after its
    insert."""
    if body is None:
        erase(conn, [pk])
        return
    kept = conn.execute(
        update(message_bodies).where(message_bodies.c.message_pk == pk).values(body=body)
    )
    if kept.rowcount == 0:
        conn.execute(insert(message_bodies).values(message_pk=pk, body=body))
