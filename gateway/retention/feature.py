"""Registers the retention job with the worker: one run per ``interval_s``.

The next run's time is kept in the ledger (``retention_schedule``), set one
interval after the first start, and claimed with a conditional update, so a
restarting gateway does not purge at once and two gateway processes on one
ledger never run it together.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from gateway.context import Gateway
from gateway.features import periodic
from gateway.ledger.store import as_utc
from gateway.retention import service
from gateway.retention.config import retention_of
from gateway.retention.tables import schedule

JOB = "retention"
IDLE_S = 1.0  # short naps, so a stopping worker is not held up by the interval


def _claim(gw: Gateway, interval_s: float) -> bool:
    """True when this process may run now (the next run is then one interval on)."""
    now = gw.clock()
    following = now + timedelta(seconds=interval_s)
    with gw.ledger.transaction() as conn:
        found = conn.execute(select(schedule.c.next_run_at).where(schedule.c.job == JOB)).first()
        if found is None:
            conn.execute(insert(schedule).values(job=JOB, next_run_at=following))
            return False
        due: datetime = as_utc(found[0])
        if now < due:
            return False
        claimed = conn.execute(
            update(schedule)
            .where(schedule.c.job == JOB, schedule.c.next_run_at == found[0])
            .values(next_run_at=following)
        ).rowcount
    return claimed == 1


@periodic(JOB)
def run_retention(gw: Gateway) -> int:
    """Erase what is past its retention period, once per ``interval_s``."""
    interval = retention_of(gw.settings).interval_s
    if not _claim(gw, interval):
        time.sleep(min(IDLE_S, interval))
        return 0
    reports = service.apply_all(gw)
    return sum(r.messages + r.parked for r in reports)
