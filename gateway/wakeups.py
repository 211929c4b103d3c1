"""Wake the worker's loops when there is work, instead of polling on a fixed period.

A loop notes the generation of its topic before it looks for work; when it
finds none it waits until the topic moves on (or a fallback period passes).
Nothing is lost between the look and the wait: a notification after the look
changes the generation, and the wait returns at once.

Topics: ``outbox`` (something may be waiting to be published), ``receipts``
(received messages may be owed a receipt) and ``handover`` (received messages
may be waiting for a push connector). The ledger marks the transactions that
create such work (``mark``, called by ``gateway.ledger.notify.announce``);
``watch`` turns a marked transaction into a notification once it committed,
within the process. Between processes sharing a PostgreSQL ledger the same
transactions send ``NOTIFY`` and ``gateway.ledger.listener`` turns those into
notifications here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, event

__all__ = ["HANDOVER", "OUTBOX", "RECEIPTS", "TOPICS", "Wakeups", "mark", "unmark"]

OUTBOX = "outbox"
RECEIPTS = "receipts"
HANDOVER = "handover"
TOPICS = (OUTBOX, RECEIPTS, HANDOVER)

# Topics a connection's current transaction created work for; kept on the pooled
# connection's record, so the pool's ``checkin`` (after the commit) sees them.
_PENDING = "cafgw_wake_topics"


def mark(conn: Connection, *topics: str) -> None:
    """Note that ``conn``'s transaction creates work for ``topics`` (woken on its commit)."""
    pending: set[str] = conn.info.setdefault(_PENDING, set())
    pending.update(topics)


def unmark(conn: Connection, *topics: str) -> None:
    """Take back ``topics`` that ``conn``'s transaction marked: it did that work itself.
    (Between processes a PostgreSQL ``NOTIFY`` already sent stays sent: a replica's
    loop woken by it finds nothing, as after any other replica's turn.)"""
    pending: set[str] | None = conn.info.get(_PENDING)
    if pending:
        pending.difference_update(topics)


class Wakeups:
    """Generation counters per topic, and a condition to wait on them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generations: Counter[str] = Counter()

    def generation(self, topic: str) -> int:
        with self._cond:
            return self._generations[topic]

    def notify(self, *topics: str) -> None:
        with self._cond:
            for topic in topics:
                self._generations[topic] += 1
            self._cond.notify_all()

    def wait(self, topic: str, seen: int, timeout_s: float) -> bool:
        """Wait until ``topic`` moved past generation ``seen``; False after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._generations[topic] != seen, timeout_s)

    def watch(self, engine: Engine) -> Callable[[], None]:
        """Notify the topics each committed transaction on ``engine`` marked (``mark``).

        Whoever records work (the API, a feature, a test feeding the outbox)
        wakes the loop that does it without knowing it exists. Notified when
        the connection returns to the pool, i.e. after the commit, so the
        loop's query sees the rows; a rolled-back transaction's marks are
        dropped. Returns the function that stops watching.
        """

        def rollback(conn: Any) -> None:
            # A connection lost mid-transaction (the server restarting) must be left
            # alone here: asking for its info would try to reconnect inside the
            # rollback and turn an outage into another error. (Its marks may then wake
            # the loops once for nothing.)
            if not conn.invalidated:
                conn.info.pop(_PENDING, None)

        def checkin(_dbapi: Any, record: Any) -> None:
            topics = record.info.pop(_PENDING, None) if record is not None else None
            if topics:
                self.notify(*sorted(topics))

        event.listen(engine, "rollback", rollback)
        event.listen(engine, "checkin", checkin)

        def unwatch() -> None:
            event.remove(engine, "rollback", rollback)
            event.remove(engine, "checkin", checkin)

        return unwatch
