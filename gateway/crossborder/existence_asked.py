"""Existence queries this authority asked, by the child they were about.

A query carries only keyed hashes of the child's identifiers, so its ledger row has
no child key: the child key says a message carries the child's personal data, and
decides who is told of a consent withdrawal and how long the child's consent
entries are kept (``gateway.crossborder.knowledge``, ``gateway.retention.purge``).
An asked authority learns nothing of the child from a query it could not match,
and must not be sent the child's identity because it was asked.

The asking authority must still find its queries by the child: an erasure of the
child erases them, with the answers on their threads, and asks each asked authority
to erase its copy; the child's subject access report lists them. So each query is
noted here under the child key of each identifier it was asked with (a UPN, an NHS
number, a name with a date of birth: ``keys_of``), whichever of them a later
erasure or report names the child by. A note goes with its query's row
(``forget``, from every purge that erases it).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
)

from gateway.crossborder.tables import metadata
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.model import Child, Identifier
from gateway.policy.child import child_key

existence_asked = Table(
    "existence_asked",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("child_key", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_existence_asked_child", existence_asked.c.authority, existence_asked.c.child_key)
Index("ix_existence_asked_message", existence_asked.c.authority, existence_asked.c.message_id)


def keys_of(child: Child) -> tuple[str, ...]:
    """The child keys ``child`` may be named by later: of its UPN, of its NHS number,
    and of its name with its date of birth (``child_key`` of each alone)."""
    found: list[str] = []
    for scheme in ("UPN", "NHS"):
        value = child.identifier(scheme)
        if value:
            found.append(child_key(Child("", "", identifiers=(Identifier(scheme, value),))))
    if child.date_of_birth is not None:
        found.append(child_key(Child(child.given_name, child.family_name, child.date_of_birth)))
    found.append(child_key(child))
    return tuple(dict.fromkeys(found))


def note(
    conn: Connection, authority: str, message_id: str, keys: Sequence[str], at: datetime
) -> None:
    """Note ``authority``'s query ``message_id`` as about the child of ``keys``."""
    conn.execute(
        insert(existence_asked),
        [
            {"authority": authority, "message_id": message_id, "child_key": k, "at": at}
            for k in keys
        ],
    )


def threads_about(conn: Connection, authority: str, key: str) -> set[str]:
    """The threads of ``authority``'s queries about the child ``key`` (the query, any
    answer, and a refusal recorded here)."""
    asked = select(existence_asked.c.message_id).where(
        existence_asked.c.authority == authority, existence_asked.c.child_key == key
    )
    return {
        str(r[0])
        for r in conn.execute(
            select(messages.c.correlation_id).where(
                messages.c.authority == authority,
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_id.in_(asked),
            )
        )
    }


def forget(conn: Connection, authority: str, message_ids: Collection[str]) -> None:
    """Drop the notes of ``authority``'s queries ``message_ids`` (their rows erased)."""
    wanted = sorted(message_ids)
    for start in range(0, len(wanted), 500):
        conn.execute(
            delete(existence_asked).where(
                existence_asked.c.authority == authority,
                existence_asked.c.message_id.in_(wanted[start : start + 500]),
            )
        )
