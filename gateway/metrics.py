"""Prometheus metrics, read from the ledger and the broker at scrape time.

Nothing is counted in the request path: every scrape asks the ledger (the
source of truth shared by every gateway process) and the broker. Counters
and the latency histogram are built from the status history incrementally
(``gateway.ops.tally``), so each scrape reads only what is new and the
values only ever grow (a restart recounts the same history).

Metric names (all prefixed ``cafgw_``), listed with their labels in
``docs/operations.md``: counters ``transitions_total`` (messages entering
each status), ``retries_total``, ``dead_letters_total``,
``handover_failures_total`` and the ``delivery_latency_seconds`` histogram;
gauges ``messages`` (by current status), ``needs_human``,
``handover_failing``, ``receipts_overdue``, ``messages_stuck``,
``queue_messages``, ``queue_messages_unacknowledged``, ``queue_consumers``,
``broker_up``, ``ledger_up``, ``disputes_open``,
``disputes_overdue``, ``audit_anchor_mismatch``, ``certificate_expiry_seconds``,
``pinned_certificate_expiry_seconds``, ``disk_free_bytes``,
``disk_free_ratio``; with ``cpu_budget`` on, ``stage_cpu_seconds_total`` and
``process_cpu_seconds_total`` (``gateway.cpu_budget``). The check processes'
``check_processes``, ``checked_in_processes_total`` and
``check_process_failures_total`` are the process's own
(``services.receiving.check_pool``, registered by ``api.routes.ops``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway.context import Gateway
from gateway.cpu_budget import BUDGET, CpuBudgetCollector
from gateway.errors import CafgwError
from gateway.ledger import audit_anchor, stats
from gateway.ledger.status import Direction, Status
from gateway.ops import attention
from gateway.ops.broker import BrokerProbe
from gateway.ops.certificates import hosted_certificates, pinned_certificates
from gateway.ops.disputes import open_disputes
from gateway.ops.readiness import data_path, disk_space
from gateway.ops.tally import Tally, Totals

# ``cafgw_messages`` counts the whole ledger by current status (about 1.5 ms of CPU
# per 1,000 messages on SQLite, ``python -m bench.scrape``): a count that took longer
# than RECOUNT_ABOVE_S (wall time) is made again only once RECOUNT_FACTOR times as
# long has passed, and at most RECOUNT_MAX_WAIT_S later (a count held up by a lock
# or a stall, not by the ledger's size, does not freeze the gauge for long), so
# scrapes of a large ledger spend at most a fiftieth of a core on it; a smaller
# ledger is counted at every scrape.
RECOUNT_FACTOR = 50
RECOUNT_ABOVE_S = 0.02
RECOUNT_MAX_WAIT_S = 300.0

T = TypeVar("T")


class Recount(Generic[T]):
    """``read()``'s last answer, read again once the time it took, times ``factor``
    (at most ``max_wait_s``), has passed; at once when it took no more than ``above_s``.
    The module's constants where not given."""

    def __init__(
        self,
        read: Callable[[], T],
        factor: float | None = None,
        above_s: float | None = None,
        max_wait_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._clock = read, clock
        self._factor = RECOUNT_FACTOR if factor is None else factor
        self._above_s = RECOUNT_ABOVE_S if above_s is None else above_s
        self._max_wait_s = RECOUNT_MAX_WAIT_S if max_wait_s is None else max_wait_s
        self._last: T | None = None
        self._next = 0.0

    def get(self) -> T:
        began = self._clock()
        if self._last is None or began >= self._next:
            self._last = self._read()
            took = self._clock() - began
            wait = min(took * self._factor, self._max_wait_s) if took > self._above_s else 0.0
            self._next = began + wait
        return self._last


class LedgerCollector(Collector):
    """Message counts, transitions, latency, what needs a human, disputes, certificates."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._lock = threading.Lock()
        self._tally = Tally(gw.ledger)
        self._counts = Recount(lambda: stats.counts_by_type(gw.ledger))

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("cafgw_ledger_up", "1 if the ledger answered this scrape")
        try:
            with self._lock:
                families = list(self._ledger_families())
        except CafgwError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        yield from self._certificates()

    def _ledger_families(self) -> Iterator[Metric]:
        gw = self.gw
        now = gw.clock()
        messages = GaugeMetricFamily(
            "cafgw_messages",
            "Messages in the ledger by current status",
            labels=["authority", "direction", "message_type", "status"],
        )
        for c in self._counts.get():
            messages.add_metric([c.authority, c.direction, c.message_type, c.status], c.count)
        yield messages

        totals = self._tally.catch_up(now)
        yield from _counters(gw, totals)
        yield from _attention(gw)

        overdue = stats.receipts_overdue(gw.ledger, now)
        receipts = GaugeMetricFamily(
            "cafgw_receipts_overdue",
            "Sent messages past their receipt deadline",
            labels=["authority"],
        )
        stuck = GaugeMetricFamily(
            "cafgw_messages_stuck",
            "Messages past the deadline by which they should have finished "
            "(outbound: the whole retry budget; inbound: the local acknowledgement deadline)",
            labels=["authority", "direction"],
        )
        for code in gw.hosted:
            receipts.add_metric([code], overdue.get(code, 0))
            delivery = gw.settings.delivery_for(code)
            out_before = now - timedelta(seconds=gw.settings.worst_case_s(code))
            in_before = now - timedelta(seconds=delivery.local_ack_deadline_s)
            stuck.add_metric(
                [code, "OUTBOUND"],
                stats.unfinished_created_before(gw.ledger, Direction.OUTBOUND, code, out_before),
            )
            stuck.add_metric(
                [code, "INBOUND"],
                stats.unfinished_created_before(gw.ledger, Direction.INBOUND, code, in_before),
            )
        yield receipts
        yield stuck

        disputes = open_disputes(gw, gw.hosted)
        open_ = GaugeMetricFamily(
            "cafgw_disputes_open", "Open disputes by stage", labels=["authority", "stage"]
        )
        late = GaugeMetricFamily(
            "cafgw_disputes_overdue",
            "Open disputes past their stage deadline",
            labels=["authority"],
        )
        by_stage: dict[tuple[str, str], int] = {}
        for d in disputes:
            by_stage[(d.authority, d.stage)] = by_stage.get((d.authority, d.stage), 0) + 1
        for (code, stage), n in sorted(by_stage.items()):
            open_.add_metric([code, stage], n)
        for code in gw.hosted:
            late.add_metric([code], sum(1 for d in disputes if d.authority == code and d.overdue))
        yield open_
        yield late

        anchored = GaugeMetricFamily(
            "cafgw_audit_anchor_mismatch",
            "1 while a peer holds a head of this gateway's audit chain that the chain no "
            "longer contains (entries cut off or rewritten), by the last check",
            labels=["authority", "peer"],
        )
        for check in audit_anchor.last_checked(gw.ledger):
            anchored.add_metric([check.authority, check.peer], 1 if check.mismatches else 0)
        yield anchored

    def _certificates(self) -> Iterator[Metric]:
        # Seconds, the Prometheus base unit; the alerts divide by 86400 for days.
        expiry = GaugeMetricFamily(
            "cafgw_certificate_expiry_seconds",
            "Seconds until the hosted authority's signing certificate expires",
            labels=["authority"],
        )
        now = self.gw.clock()
        for cert in hosted_certificates(self.gw, now):
            expiry.add_metric([cert.authority], (cert.not_after - now).total_seconds())
        yield expiry
        pinned = GaugeMetricFamily(
            "cafgw_pinned_certificate_expiry_seconds",
            "Seconds until the last certificate pinned for a peer authority expires",
            labels=["authority"],
        )
        for cert in pinned_certificates(self.gw, now):
            pinned.add_metric([cert.authority], (cert.not_after - now).total_seconds())
        yield pinned


def _counters(gw: Gateway, totals: Totals) -> Iterator[Metric]:
    transitions = CounterMetricFamily(
        "cafgw_transitions",
        "Status changes: messages entering each status (rate() gives sends, deliveries, "
        "failures per second)",
        labels=["authority", "direction", "message_type", "status"],
    )
    for (code, direction, message_type, status), n in sorted(totals.transitions.items()):
        transitions.add_metric([code, direction, message_type, status], n)
    yield transitions

    latency = HistogramMetricFamily(
        "cafgw_delivery_latency_seconds",
        "Time from acceptance to the recipient gateway's signed receipt",
        labels=["authority"],
    )
    for code, lat in sorted(totals.latency.items()):
        buckets = [(floatToGoString(b), float(n)) for b, n in lat.cumulative()]  # type: ignore[no-untyped-call]
        latency.add_metric([code], buckets, lat.total_s)
    yield latency

    def outbound(status: Status) -> Counter[str]:
        out: Counter[str] = Counter()
        for (code, direction, _type, st), n in totals.transitions.items():
            if direction == Direction.OUTBOUND.value and st == status.value:
                out[code] += n
        return out

    retried, dead = outbound(Status.RETRYING), outbound(Status.DEAD_LETTERED)
    retries = CounterMetricFamily(
        "cafgw_retries", "Re-sends after a missing receipt", labels=["authority"]
    )
    dead_letters = CounterMetricFamily(
        "cafgw_dead_letters", "Messages dead-lettered after their budget", labels=["authority"]
    )
    failures = CounterMetricFamily(
        "cafgw_handover_failures",
        "Failed handovers to the local system (webhook or file drop); the message waits "
        "and is tried again",
        labels=["authority"],
    )
    for code in sorted(set(gw.hosted) | set(retried) | set(dead)):
        retries.add_metric([code], retried[code])
        dead_letters.add_metric([code], dead[code])
    for code in sorted(set(gw.hosted) | set(totals.handover_failures)):
        failures.add_metric([code], totals.handover_failures[code])
    yield retries
    yield dead_letters
    yield failures


def _attention(gw: Gateway) -> Iterator[Metric]:
    found = attention.counts(gw.ledger, gw.hosted)
    needs = GaugeMetricFamily(
        "cafgw_needs_human",
        "Messages waiting for a human, by why: DEAD_LETTERED, QUARANTINED, REJECTED, "
        "UNDELIVERABLE (until replayed or dismissed), HANDOVER_FAILING (the local system keeps "
        "failing), RETRYING",
        labels=["authority", "need"],
    )
    failing = GaugeMetricFamily(
        "cafgw_handover_failing",
        "Received messages whose handover to the local system keeps failing",
        labels=["authority"],
    )
    for code in gw.hosted:
        for need in attention.Need:
            needs.add_metric([code, need.value], found.get((code, need), 0))
        failing.add_metric([code], found.get((code, attention.Need.HANDOVER_FAILING), 0))
    yield needs
    yield failing


class BrokerCollector(Collector):
    """Queue figures (management API, else passive declare) and whether the broker answered."""

    def __init__(self, probe: BrokerProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("cafgw_broker_up", "1 if the broker answered this scrape")
        try:
            found = self.probe.queue_stats()
        except CafgwError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        ready = GaugeMetricFamily(
            "cafgw_queue_messages", "Messages ready in a queue", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "cafgw_queue_messages_unacknowledged",
            "Messages delivered to a consumer and not yet acknowledged (management API only)",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            "cafgw_queue_consumers", "Consumers of a queue", labels=["queue"]
        )
        for name, stats_ in sorted(found.items()):
            if stats_ is None:
                continue
            ready.add_metric([name], stats_.ready)
            if stats_.unacknowledged is not None:
                unacked.add_metric([name], stats_.unacknowledged)
            if stats_.consumers is not None:
                consumers.add_metric([name], stats_.consumers)
        yield ready
        yield unacked
        yield consumers


class DiskCollector(Collector):
    """Free space where the gateway writes."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Metric]:
        try:
            space = disk_space(data_path(self.gw))
        except OSError:
            return
        free = GaugeMetricFamily(
            "cafgw_disk_free_bytes", "Free bytes where the gateway writes", labels=["path"]
        )
        ratio = GaugeMetricFamily(
            "cafgw_disk_free_ratio", "Free fraction where the gateway writes", labels=["path"]
        )
        free.add_metric([str(space.path)], space.free_bytes)
        ratio.add_metric([str(space.path)], round(space.free_ratio, 4))
        yield free
        yield ratio


def build_registry(gw: Gateway, probe: BrokerProbe) -> CollectorRegistry:
    """A registry of this gateway's collectors (one per app, not the global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(gw))
    registry.register(BrokerCollector(probe))
    registry.register(DiskCollector(gw))
    registry.register(CpuBudgetCollector(BUDGET))  # empty unless cpu_budget is on
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(registry)
