"""Telling the gateway's loops, in this process and in its replicas, that there is work.

A transaction that creates work for a loop (an outbound message in the
outbox, a received message owed a receipt or waiting for its handover)
``announce``s its topics. Within the process ``gateway.wakeups`` wakes the
loops once the transaction committed. On PostgreSQL the transaction also sends
``NOTIFY <channel>, '<topic> <origin>'``; PostgreSQL delivers it at the commit
only (never for a rollback), to every process of the ledger listening
(``gateway.ledger.listener``), which skip their own (``origin``: they were
woken already). Once per topic per transaction.

PostgreSQL's channels are per database, not per schema, so the channel is
named after the ledger's schema (``channel_name``): gateways whose ledgers
share one database in different schemas (``search_path`` in the URL) do not
wake each other's loops.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Transaction

from gateway.ledger.status import OUTBOX_STATES, Status
from gateway.wakeups import HANDOVER, OUTBOX, mark

# The channel of a ledger in the default schema (``public``).
CHANNEL = "cafgw_work"
# A schema name used in the channel's name as it is (else: a digest of it).
_PLAIN = re.compile(r"[a-z0-9_]{1,40}")
# Where a pooled connection keeps its channel (its schema does not change).
_INFO_KEY = "cafgw_notify_channel"

# Received messages in these states wait for a push connector's handover.
AWAITING_HANDOVER = frozenset({Status.VERIFIED, Status.REPLAYED})

# Topics already sent by each open transaction (PostgreSQL folds repeats too,
# but each would cost a round trip).
_SENT: WeakKeyDictionary[Transaction, set[str]] = WeakKeyDictionary()


def channel_name(schema: str) -> str:
    """The notification channel of a ledger in ``schema``: a valid identifier of at
    most 63 bytes, the same for every process on that schema, unlike for any other."""
    if schema == "public":
        return CHANNEL
    if _PLAIN.fullmatch(schema):
        return f"{CHANNEL}_{schema}"
    return f"{CHANNEL}_{hashlib.sha256(schema.encode()).hexdigest()[:16]}"


def current_channel(conn: Connection) -> str:
    """The channel of the ledger ``conn`` is on (its ``current_schema()``), asked once
    per pooled connection."""
    channel = conn.info.get(_INFO_KEY)
    if channel is None:
        schema = conn.execute(select(func.current_schema())).scalar_one()
        channel = conn.info[_INFO_KEY] = channel_name(str(schema))
    return str(channel)


def announce(conn: Connection, origin: str, *topics: str) -> None:
    """Wake the loops of ``topics``, here and in every replica, once ``conn`` commits."""
    if not topics:
        return
    mark(conn, *topics)
    if conn.dialect.name != "postgresql":
        return  # SQLite takes one gateway process: the in-process wake is all there is
    # Kept per savepoint when in one: a savepoint rolled back takes its NOTIFY with it,
    # and the transaction must then send it again when asked.
    transaction = conn.get_nested_transaction() or conn.get_transaction()
    sent = _SENT.setdefault(transaction, set()) if transaction is not None else set()
    new = sorted(set(topics) - sent)
    if not new:
        return
    channel = current_channel(conn)
    conn.execute(select(*(func.pg_notify(channel, f"{topic} {origin}") for topic in new)))
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
