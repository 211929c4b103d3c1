"""What the dashboard shows a caller: flowing, stuck, and needing a human.

Built from the ledger for the authorities the caller may see (an authority
its own, an admin every hosted one). Only message ids, types, authorities,
statuses, counts and reasons are shown; reasons pass through the redactor
in case one quotes an identifier (``lines``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.api.auth import Caller
from gateway.context import Gateway
from gateway.dashboard.lines import MessageLine, erased_dead_letters, line_of
from gateway.dashboard.panels import AuthorityPanel, build_panels
from gateway.errors import CafgwError
from gateway.ledger import stats
from gateway.ledger.records import MessageRecord
from gateway.ops import attention, rates, readiness
from gateway.ops.broker import BrokerProbe, QueueStats
from gateway.ops.certificates import pinned_certificates
from gateway.ops.disputes import DisputeLine, open_disputes
from gateway.ops.flows import flows
from gateway.transport.topology import topology_for

REFRESH_S = 5
LIST_LIMIT = 50
RECENT_LIMIT = 25
FLOW_WINDOW = timedelta(hours=24)
# Chart ranges: seconds shown -> seconds per point (60 to 72 points each).
RANGES_S = {3600: 60, 6 * 3600: 300, 24 * 3600: 1200}
DEFAULT_RANGE_S = 6 * 3600


@dataclass(frozen=True)
class Viewer:
    role: str
    authority: str | None


@dataclass(frozen=True)
class HealthLine:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class QueueLine:
    authority: str
    queue: str
    kind: str  # "inbox" or "parking"
    exists: bool
    ready: int | None
    unacknowledged: int | None  # None: unknown (no management API)
    consumers: int | None
    source: str | None  # "management" or "passive"


@dataclass(frozen=True)
class FlowCell:
    sender: str
    recipient: str
    delivered: int
    in_flight: int
    failing: int
    held: int
    total: int
    state: str  # failing, held, in_flight or delivered
    last_at: datetime


@dataclass(frozen=True)
class RateSeries:
    """Per authority, counts per step: sent, delivered, received, failing."""

    start: datetime
    step_s: int
    range_s: int
    series: dict[str, dict[str, list[int]]]


@dataclass(frozen=True)
class DashboardView:
    generated_at: datetime
    refresh_s: int
    viewer: Viewer
    health: list[HealthLine]
    authorities: list[AuthorityPanel]
    attention: list[MessageLine]
    attention_total: int
    awaiting_receipt: list[MessageLine]
    awaiting_receipt_total: int
    recent: list[MessageLine]
    disputes: list[DisputeLine]
    queues: list[QueueLine]
    queues_note: str | None
    flows: list[FlowCell]
    flow_window_h: int
    rates: RateSeries


def visible_authorities(gw: Gateway, who: Caller) -> list[str]:
    """The hosted authorities whose data this caller may see."""
    if who.is_admin:
        return list(gw.hosted)
    return [code for code in gw.hosted if code == who.authority]


def _queue_stats(probe: BrokerProbe) -> tuple[Mapping[str, QueueStats | None] | None, str | None]:
    try:
        return probe.queue_stats(), None
    except CafgwError as exc:
        return None, f"queue figures unavailable: {exc}"


def _queues(
    gw: Gateway, codes: Sequence[str], found: Mapping[str, QueueStats | None] | None
) -> list[QueueLine]:
    if found is None:
        return []
    topology = topology_for(gw.settings.broker)
    out = []
    for code in codes:
        for kind, name in (("inbox", topology.inbox(code)), ("parking", topology.parking(code))):
            q = found.get(name)
            out.append(
                QueueLine(
                    authority=code,
                    queue=name,
                    kind=kind,
                    exists=q is not None,
                    ready=q.ready if q else None,
                    unacknowledged=q.unacknowledged if q else None,
                    consumers=q.consumers if q else None,
                    source=q.source if q else None,
                )
            )
    return out


def _rates(gw: Gateway, codes: Sequence[str], now: datetime, range_s: int) -> RateSeries:
    step = RANGES_S.get(range_s, RANGES_S[DEFAULT_RANGE_S])
    range_s = range_s if range_s in RANGES_S else DEFAULT_RANGE_S
    points = range_s // step
    # Whole steps, so that a point does not change meaning between refreshes.
    end = datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, tz=now.tzinfo)
    start = end - timedelta(seconds=range_s)
    found = rates.series_of(gw.ledger, codes, start, step, points)
    series = {code: {kind: found[(code, kind)] for kind in rates.KINDS} for code in codes}
    return RateSeries(start, step, range_s, series)


def _peer_certificate_warnings(gw: Gateway, now: datetime) -> list[HealthLine]:
    """Peers whose pinned certificates end soon: their messages will be quarantined."""
    return [
        HealthLine(
            f"certificate of {c.authority}",
            False,
            f"trust ends in {max(c.days_left, 0):.0f} days; pin its rotated certificate",
        )
        for c in pinned_certificates(gw, now)
        if c.warning and c.authority not in gw.hosted
    ]


def build_view(
    gw: Gateway, who: Caller, probe: BrokerProbe, range_s: int = DEFAULT_RANGE_S
) -> DashboardView:
    """The dashboard for ``who``: only the authorities it may see."""
    now = gw.clock()
    codes = visible_authorities(gw, who)
    found, queues_note = _queue_stats(probe)
    queues = _queues(gw, codes, found)
    parked = {q.authority: q.ready for q in queues if q.kind == "parking"}
    panels = build_panels(gw, codes, now, parked)
    ready = readiness.check(gw, probe)
    asking = attention.records(gw.ledger, codes, LIST_LIMIT)
    awaiting = stats.awaiting_receipt(gw.ledger, codes, LIST_LIMIT)
    recent = stats.latest(gw.ledger, codes, RECENT_LIMIT)
    erased = erased_dead_letters(gw.ledger, [*asking, *awaiting, *recent])  # one read

    def lines(records: list[MessageRecord]) -> list[MessageLine]:
        return [line_of(r, who, now, erased=r.pk in erased) for r in records]

    return DashboardView(
        generated_at=now,
        refresh_s=REFRESH_S,
        viewer=Viewer(who.role, who.authority),
        health=[HealthLine(c.name, c.ok, c.detail) for c in ready.checks]
        + _peer_certificate_warnings(gw, now),
        authorities=panels,
        attention=lines(asking),
        attention_total=sum(p.needs_human_total for p in panels),
        awaiting_receipt=lines(awaiting),
        awaiting_receipt_total=sum(p.awaiting_receipt for p in panels),
        recent=lines(recent),
        disputes=open_disputes(gw, codes),
        queues=queues,
        queues_note=queues_note,
        flows=[
            FlowCell(
                f.sender,
                f.recipient,
                f.delivered,
                f.in_flight,
                f.failing,
                f.held,
                f.total,
                f.state,
                f.last_at,
            )
            for f in flows(gw.ledger, codes, now - FLOW_WINDOW)
        ],
        flow_window_h=int(FLOW_WINDOW.total_seconds() // 3600),
        rates=_rates(gw, codes, now, range_s),
    )
