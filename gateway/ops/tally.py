"""Running totals from the ledger's append-only tables, for Prometheus counters.

Every status change is a row of ``status_history`` and every failed handover
a row of ``handover_failures``; counting them gives counters that only grow
(``cafgw_transitions_total``, ``cafgw_handover_failures_total``) and the
delivery latency histogram. Each scrape reads only the rows added since the
last one, aggregated in SQL, so a busy gateway or a long history costs one
grouped query, not a row per message. A restarted gateway recounts the same
history and reports the same totals.

On PostgreSQL ids are handed out before commit, so a row with a lower id can
become visible after a higher one; the tally stops ``LAG_S`` seconds short
of now there (``gateway.ledger.id_order``), so a row is counted once it is
that old. SQLite has one writer at a time, so there is no lag.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, cast, func, select
from sqlalchemy.types import Float

from gateway.connectors.tables import handover_failures
from gateway.ledger.id_order import visible_bound
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600)

TransitionKey = tuple[str, str, str, str]  # authority, direction, message type, status


def seconds_between(conn: Connection, later: Any, earlier: Any) -> Any:
    """SQL for ``later - earlier`` in seconds (to the millisecond), on SQLite and PostgreSQL."""
    if conn.dialect.name == "sqlite":
        # julianday() is a double of about 2.5 million days: good to ~50 µs, so round to ms.
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return cast(func.extract("epoch", later - earlier), Float)


@dataclass
class Latency:
    """A cumulative histogram of seconds (acceptance to signed receipt)."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total_s: float = 0.0

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), the last bound being +Inf."""
        out, running = [], 0
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.buckets, strict=True):
            running += n
            out.append((float(bound), running))
        return out


@dataclass
class Totals:
    """What has been counted so far."""

    transitions: Counter[TransitionKey] = field(default_factory=Counter)
    handover_failures: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Latency] = field(default_factory=dict)


class Tally:
    """Incremental totals over one ledger; thread-safe, one per metrics registry."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.totals = Totals()
        self._last_history = 0
        self._last_failure = 0
        self._lock = threading.Lock()

    def catch_up(self, now: datetime) -> Totals:
        """Count what was added since the last call; the totals so far."""
        with self._lock, self.ledger.transaction() as conn:
            bound = visible_bound(conn, now)
            self._history(conn, bound)
            self._failures(conn, bound)
            return self.totals

    def _upto(self, conn: Connection, id_col: Any, at_col: Any, bound: datetime | None) -> int:
        query = select(func.max(id_col))
        if bound is not None:
            query = query.where(at_col <= bound)
        return int(conn.execute(query).scalar() or 0)

    def _history(self, conn: Connection, bound: datetime | None) -> None:
        upto = self._upto(conn, history.c.id, history.c.at, bound)
        if upto <= self._last_history:
            return
        window = (history.c.id > self._last_history, history.c.id <= upto)
        cols = (messages.c.authority, messages.c.direction, messages.c.message_type)
        grouped = (
            select(*cols, history.c.status, func.count())
            .join(messages, messages.c.id == history.c.message_pk)
            .where(*window)
            .group_by(*cols, history.c.status)
        )
        for authority, direction, message_type, status, n in conn.execute(grouped).all():
            self.totals.transitions[(authority, direction, message_type, status)] += int(n)
        seconds = seconds_between(conn, history.c.at, messages.c.created_at)
        seconds = case((seconds < 0, 0.0), else_=seconds)
        bucket = case(
            *[(seconds <= b, i) for i, b in enumerate(LATENCY_BUCKETS_S)],
            else_=len(LATENCY_BUCKETS_S),
        )
        latency = (
            select(messages.c.authority, bucket, func.count(), func.sum(seconds))
            .join(messages, messages.c.id == history.c.message_pk)
            .where(
                *window,
                history.c.status == Status.DELIVERED.value,
                # Not searched by: the window's history is found by its keys, then its
                # messages. By the direction SQLite read every message ever sent, at
                # every scrape (issue 14).
                unindexed(messages.c.direction) == Direction.OUTBOUND.value,
                messages.c.message_type != "Receipt",
            )
            .group_by(messages.c.authority, bucket)
        )
        for authority, index, n, total in conn.execute(latency).all():
            lat = self.totals.latency.setdefault(authority, Latency())
            lat.buckets[int(index)] += int(n)
            lat.total_s += float(total or 0.0)
        self._last_history = upto

    def _failures(self, conn: Connection, bound: datetime | None) -> None:
        t = handover_failures
        upto = self._upto(conn, t.c.id, t.c.at, bound)
        if upto <= self._last_failure:
            return
        rows = conn.execute(
            select(t.c.authority, func.count())
            .where(t.c.id > self._last_failure, t.c.id <= upto)
            .group_by(t.c.authority)
        ).all()
        for authority, n in rows:
            self.totals.handover_failures[authority] += int(n)
        self._last_failure = upto
