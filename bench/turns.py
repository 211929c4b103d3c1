"""Who holds a process's SQLite writer, and who waits for it (issue 14).

A gateway process writes its SQLite ledger one transaction at a time
(``gateway.ledger.sqlite_writer``): a connection takes the writer's turn at
its first write statement and gives it back when it returns to the pool,
after its commit (the flush to disk comes after that: group commit,
``gateway.ledger.wal_sync``). ``watch()`` times
every turn taken in this process while it is active: per thread, how long
each writer waited for the turn and how long it held it. ``python -m
bench.hops --turns`` prints it for the sender gateway, which runs in the
bench's own process (its load generator is ``MainThread``). Measurement
only: the gateway's code is unchanged, and the timing is undone on exit.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gateway.ledger import sqlite_writer


@dataclass(frozen=True)
class TurnTimes:
    """Seconds each thread waited for the writer's turn, and held it, per turn."""

    waits: dict[str, list[float]] = field(default_factory=dict)
    holds: dict[str, list[float]] = field(default_factory=dict)

    def table(self, window_s: float) -> list[str]:
        """One line per thread: turns, wait and hold p50/p95/p99 (ms), and the share
        of ``window_s`` it held the writer."""
        lines = [
            f"{'writer (thread)':24s} {'turns':>6s} {'wait p50':>9s} {'p95':>6s} {'p99':>6s}"
            f" {'hold p50':>9s} {'p95':>6s} {'p99':>6s} {'busy':>6s}"
        ]
        for name in sorted(self.holds, key=lambda n: -sum(self.holds[n])):
            waits, holds = self.waits.get(name, []), self.holds[name]
            lines.append(
                f"{name[:24]:24s} {len(holds):6d} {_ms(waits)} {_ms(holds)}"
                f" {sum(holds) / window_s:6.0%}"
            )
        return lines


def _ms(values: list[float]) -> str:
    if len(values) < 2:
        return f"{'':>9s} {'':>6s} {'':>6s}"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"{q[49] * 1000:9.2f} {q[94] * 1000:6.2f} {q[98] * 1000:6.2f}"


@contextmanager
def watch() -> Iterator[TurnTimes]:
    """Time every writer's turn in this process until the block ends."""
    times = TurnTimes()
    held: dict[int, tuple[float, str]] = {}
    turn = sqlite_writer._Turn  # the process's one writer, timed from outside
    take, give_back = turn.take, turn.give_back

    def timed_take(self: Any, dbapi_conn: Any, wait_s: float) -> None:
        if self.owner is dbapi_conn:
            take(self, dbapi_conn, wait_s)
            return
        name = threading.current_thread().name
        started = time.perf_counter()
        take(self, dbapi_conn, wait_s)
        now = time.perf_counter()
        times.waits.setdefault(name, []).append(now - started)
        if self.owner is dbapi_conn:
            held[id(dbapi_conn)] = (now, name)

    def timed_give_back(self: Any, dbapi_conn: Any) -> None:
        since = held.pop(id(dbapi_conn), None) if self.owner is dbapi_conn else None
        give_back(self, dbapi_conn)
        if since is not None:
            times.holds.setdefault(since[1], []).append(time.perf_counter() - since[0])

    turn.take, turn.give_back = timed_take, timed_give_back  # type: ignore[method-assign]
    try:
        yield times
    finally:
        turn.take, turn.give_back = take, give_back  # type: ignore[method-assign]
