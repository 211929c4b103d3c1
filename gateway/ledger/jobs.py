"""Once across replicas: which gateway process runs each periodic job.

Replicas of one gateway share its ledger; each periodic job (the disputes
clock, the local acknowledgement deadline, retention, re-sends) must run on
one of them at a time, or its effect is repeated or raced. A job is run by
whoever holds its lease in ``job_leases``: taken by a conditional update
(free, lapsed, or already ours), renewed by its holder every third of the
lease, given up at a clean stop, and taken over by another replica once a
killed holder's lease lapses. On SQLite, which takes one gateway process, every
job is this process's.

The ledger is asked at most once per ``renew_s`` per job and replica, so an
idle replica that does not hold a job does not poll the ledger for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Insert, insert, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.ledger.core import LedgerCore
from gateway.ledger.tables import job_leases

LEASE_S = 30.0


class JobLeases:
    """The jobs this replica holds; ``held(job)`` says whether to run it now."""

    def __init__(
        self,
        ledger: LedgerCore,
        clock: Callable[[], datetime],
        holder: str | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        # The ledger's replica name by default: every worker of one gateway is one holder.
        self.holder = holder or ledger.replica
        self.lease_s = lease_s
        self.renew_s = lease_s / 3
        self._lock = threading.Lock()
        # job -> (held?, monotonic time until which that answer stands)
        self._known: dict[str, tuple[bool, float]] = {}

    def held(self, job: str) -> bool:
        """True when this replica holds ``job``'s lease (taking or renewing it when due).

        Always on SQLite: one gateway process runs on it (``gateway.ledger.single``),
        so a gateway restarted after a kill does not wait for its old lease.
        """
        if self.ledger.engine.dialect.name == "sqlite":
            return True
        now_mono = time.monotonic()
        with self._lock:
            known = self._known.get(job)
            if known is not None and now_mono < known[1]:
                return known[0]
        mine = self._take(job)
        with self._lock:
            self._known[job] = (mine, now_mono + self.renew_s)
        return mine

    def release(self) -> None:
        """Give up every lease held (a clean stop): another replica takes them at once."""
        with self._lock:
            jobs = [job for job, (mine, _) in self._known.items() if mine]
            self._known.clear()
        if not jobs:
            return
        with self.ledger.transaction() as conn:
            conn.execute(
                update(job_leases)
                .where(job_leases.c.job.in_(jobs), job_leases.c.holder == self.holder)
                .values(until=self.clock() - timedelta(seconds=1))
            )

    def _take(self, job: str) -> bool:
        now = self.clock()
        until = now + timedelta(seconds=self.lease_s)
        with self.ledger.transaction() as conn:
            taken = conn.execute(
                update(job_leases)
                .where(
                    job_leases.c.job == job,
                    or_(job_leases.c.holder == self.holder, job_leases.c.until <= now),
                )
                .values(holder=self.holder, until=until)
                .returning(job_leases.c.job)
            ).first()
            if taken is not None:
                return True
            return _insert_if_absent(conn, job, self.holder, until)


def _insert_if_absent(conn: Connection, job: str, holder: str, until: datetime) -> bool:
    """Create ``job``'s lease for ``holder`` unless some replica has one; True if created."""
    values = {"job": job, "holder": holder, "until": until}
    statement: Insert
    if conn.dialect.name == "postgresql":
        statement = pg_insert(job_leases).values(values).on_conflict_do_nothing()
    elif conn.dialect.name == "sqlite":
        statement = sqlite_insert(job_leases).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - the ledger runs on SQLite or PostgreSQL
        statement = insert(job_leases).values(values)
    # RETURNING, not rowcount: what the driver reports for a skipped row varies.
    return conn.execute(statement.returning(job_leases.c.job)).first() is not None
