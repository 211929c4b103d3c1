"""Retention as a feature: its tables and its job, one run per ``interval_s``.

The next run's time is kept in the ledger (``retention_schedule``), set one
interval after the first start, and claimed with a conditional update, so a
restarting gateway does not purge at once and two gateway processes on one
ledger never run it together.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from gateway.feature import Feature, Job, Kit
from gateway.ledger.store import as_utc
from gateway.model import MessageType
from gateway.retention import received, service
from gateway.retention.tables import metadata, schedule

JOB = "retention"
IDLE_S = 1.0  # short naps, so a stopping worker is not held up by the interval


def _claim(kit: Kit, interval_s: float) -> bool:
    """True when this process may run now (the next run is then one interval on)."""
    now = kit.clock()
    following = now + timedelta(seconds=interval_s)
    with kit.ledger.transaction() as conn:
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


def run_retention(kit: Kit) -> int:
    """Erase what is past its retention period, once per ``interval_s``."""
    interval = kit.settings.retention.interval_s
    if not _claim(kit, interval):
        return 0
    reports = service.apply_all(kit)
    return sum(r.messages + r.parked for r in reports)


FEATURE = Feature(
    name="retention",
    tables=(metadata,),
    jobs=(Job(JOB, run_retention, idle_s=IDLE_S),),
    # An authority that disclosed a child's data asks for its copies to be erased.
    appliers={MessageType.ERASURE_REQUEST: received.on_erasure_request},
    # A message an erasure request stood for, come after it: erased as it arrives.
    on_arrival=received.on_arrival,
)
