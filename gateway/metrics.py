"""Prometheus metrics, read from the ledger and the broker at scrape time.

Nothing is counted in the request path: every scrape asks the ledger (the
source of truth shared by every gateway process) and the broker. Counters
and the latency histogram are built from the status history incrementally,
remembering the last history row seen, so each scrape reads only what is
new and the values only ever grow (a restart recounts the same history).

Metric names (all prefixed ``cafgw_``): ``messages`` (by authority,
direction, type, status), ``delivery_latency_seconds`` (accepted to signed
receipt), ``retries_total``, ``dead_letters_total``, ``receipts_overdue``,
``messages_stuck``, ``queue_messages``, ``broker_up``, ``ledger_up``,
``disputes_open``, ``disputes_overdue``, ``certificate_expiry_seconds``,
``pinned_certificate_expiry_seconds``,
``disk_free_bytes``, ``disk_free_ratio``; with ``cpu_budget`` on,
``stage_cpu_seconds_total`` and ``process_cpu_seconds_total`` (``gateway.cpu_budget``).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

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
from gateway.ledger import stats
from gateway.ledger.status import Direction, Status
from gateway.ops.broker import BrokerProbe
from gateway.ops.certificates import hosted_certificates, pinned_certificates
from gateway.ops.disputes import open_disputes
from gateway.ops.readiness import data_path, disk_space

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600)
_COUNTED = (Status.DELIVERED, Status.RETRYING, Status.DEAD_LETTERED)


@dataclass
class _Latency:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total_s += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.buckets, strict=True):
            running += n
            label: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
            out.append((label, float(running)))
        return out


@dataclass
class _History:
    """What has been counted from the status history so far."""

    last_id: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    latency: dict[str, _Latency] = field(default_factory=dict)


class LedgerCollector(Collector):
    """Message counts, latency, retries, dead letters, stuck messages, disputes, certificates."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._lock = threading.Lock()
        self._history = _History()

    def _catch_up(self) -> None:
        h = self._history
        while True:
            batch = stats.transitions_after(self.gw.ledger, h.last_id, _COUNTED)
            for t in batch:
                if t.direction != Direction.OUTBOUND.value:
                    continue
                if t.status == Status.RETRYING.value:
                    h.retries[t.authority] = h.retries.get(t.authority, 0) + 1
                elif t.status == Status.DEAD_LETTERED.value:
                    h.dead_letters[t.authority] = h.dead_letters.get(t.authority, 0) + 1
                elif t.message_type != "Receipt":
                    seconds = max(0.0, (t.at - t.created_at).total_seconds())
                    h.latency.setdefault(t.authority, _Latency()).observe(seconds)
            if not batch:
                return
            h.last_id = batch[-1].history_id

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
        for c in stats.counts_by_type(gw.ledger):
            messages.add_metric([c.authority, c.direction, c.message_type, c.status], c.count)
        yield messages

        self._catch_up()
        h = self._history
        latency = HistogramMetricFamily(
            "cafgw_delivery_latency_seconds",
            "Time from acceptance to the recipient gateway's signed receipt",
            labels=["authority"],
        )
        for code, lat in sorted(h.latency.items()):
            latency.add_metric([code], lat.cumulative(), lat.total_s)
        yield latency
        retries = CounterMetricFamily(
            "cafgw_retries", "Re-sends after a missing receipt", labels=["authority"]
        )
        dead = CounterMetricFamily(
            "cafgw_dead_letters", "Messages dead-lettered after their budget", labels=["authority"]
        )
        for code in sorted(set(gw.hosted) | set(h.retries) | set(h.dead_letters)):
            retries.add_metric([code], h.retries.get(code, 0))
            dead.add_metric([code], h.dead_letters.get(code, 0))
        yield retries
        yield dead

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
            out_before = now - timedelta(seconds=delivery.worst_case_s())
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


class BrokerCollector(Collector):
    """Queue depths (passive declare) and whether the broker answered."""

    def __init__(self, probe: BrokerProbe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("cafgw_broker_up", "1 if the broker answered this scrape")
        try:
            depths = self.probe.queue_depths()
        except CafgwError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily(
            "cafgw_queue_messages", "Messages ready in a queue", labels=["queue"]
        )
        for name, depth in sorted(depths.items()):
            if depth is not None:
                queue.add_metric([name], depth)
        yield queue


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
