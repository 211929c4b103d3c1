"""Registers the retention job with the worker: one run per ``interval_s``."""

from __future__ import annotations

import time

from gateway.context import Gateway
from gateway.features import periodic
from gateway.retention import service
from gateway.retention import tables as _tables  # noqa: F401 - tables join the ledger metadata
from gateway.retention.config import retention_of

IDLE_S = 1.0  # short naps, so a stopping worker is not held up by the interval
_next_run: dict[int, float] = {}  # id(gateway) -> monotonic time of its next run


@periodic("retention")
def run_retention(gw: Gateway) -> int:
    """Erase what is past its retention period, once per ``interval_s`` (not at start:
    a restarting gateway has other work first)."""
    now = time.monotonic()
    interval = retention_of(gw.settings).interval_s
    if now < _next_run.setdefault(id(gw), now + interval):
        time.sleep(min(IDLE_S, interval))
        return 0
    _next_run[id(gw)] = now + interval
    reports = service.apply_all(gw)
    return sum(r.messages + r.parked for r in reports)
