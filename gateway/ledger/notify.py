"""Telling the gateway's loops, in this process and in its replicas, that there is work.

A transaction that creates work for a loop (an outbound message in the
outbox, a received message owed a receipt or waiting for its handover)
``announce``s its topics. Within the process ``gateway.wakeups`` wakes the
loops once the transaction committed. On PostgreSQL the transaction also sends
``NOTIFY cafgw_work, '<topic> <origin>'``; PostgreSQL delivers it at the commit
only (never for a rollback), to every process of the ledger listening
(``gateway.ledger.listener``), which skip their own (``origin``: they were
woken already). Once per topic per transaction.

The channel is per database: gateways sharing one PostgreSQL database (in
different schemas) would wake each other's loops for nothing, never miss a wake.
"""

from __future__ import annotations

from collections.abc import Iterable
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Transaction

from gateway.ledger.status import OUTBOX_STATES, Status
from gateway.wakeups import HANDOVER, OUTBOX, mark

CHANNEL = "cafgw_work"

# Received messages in these states wait for a push connector's handover.
AWAITING_HANDOVER = frozenset({Status.VERIFIED, Status.REPLAYED})

# Topics already sent by each open transaction (PostgreSQL folds repeats too,
# but each would cost a round trip).
_SENT: WeakKeyDictionary[Transaction, set[str]] = WeakKeyDictionary()


def announce(conn: Connection, origin: str, *topics: str) -> None:
    """Wake the loops of ``topics``, here and in every replica, once ``conn`` commits."""
    if not topics:
        return
    mark(conn, *topics)
    if conn.dialect.name != "postgresql":
        return  # SQLite takes one gateway process: the in-process wake is all there is
    transaction = conn.get_transaction()
    sent = _SENT.setdefault(transaction, set()) if transaction is not None else set()
    new = sorted(set(topics) - sent)
    if not new:
        return
    conn.execute(select(*(func.pg_notify(CHANNEL, f"{topic} {origin}") for topic in new)))
    sent.update(new)


def topics_for(statuses: Iterable[Status]) -> tuple[str, ...]:
    """The loops a message moved into ``statuses`` may have work for."""
    found = set(statuses)
    topics = []
    if found & OUTBOX_STATES:
        topics.append(OUTBOX)
    if found & AWAITING_HANDOVER:
        topics.append(HANDOVER)
    return tuple(topics)


def parse(payload: str) -> tuple[str, str]:
    """``(topic, origin)`` of a notification's payload."""
    topic, _, origin = payload.partition(" ")
    return topic, origin
