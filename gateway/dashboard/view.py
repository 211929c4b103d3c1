"""What the dashboard shows a caller: flowing, stuck, and needing a human.

Built from the ledger for the authorities the caller may see (an authority
its own, an admin every hosted one). Only message ids, types, authorities,
statuses, counts and reasons are shown; reasons pass through the redactor
in case one quotes an identifier (``lines``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.api.auth import Caller
from gateway.context import Gateway
from gateway.dashboard.lines import MessageLine, line_of
from gateway.dashboard.panels import AuthorityPanel, build_panels
from gateway.errors import CafgwError
from gateway.ledger import stats
from gateway.ops import attention, readiness
from gateway.ops.broker import BrokerProbe
from gateway.ops.certificates import pinned_certificates
from gateway.ops.disputes import DisputeLine, open_disputes
from gateway.transport.rabbit import topology_for

REFRESH_S = 5
LIST_LIMIT = 50
RECENT_LIMIT = 25


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


def visible_authorities(gw: Gateway, who: Caller) -> list[str]:
    """The hosted authorities whose data this caller may see."""
    if who.is_admin:
        return list(gw.hosted)
    return [code for code in gw.hosted if code == who.authority]


def _parked(probe: BrokerProbe, gw: Gateway, codes: Sequence[str]) -> dict[str, int | None]:
    """Messages parked on the broker per authority (None when the broker is unreachable)."""
    topology = topology_for(gw.settings.broker)
    try:
        depths = probe.queue_depths()
    except CafgwError:
        return {}
    return {code: depths.get(topology.parking(code)) for code in codes}


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


def build_view(gw: Gateway, who: Caller, probe: BrokerProbe) -> DashboardView:
    """The dashboard for ``who``: only the authorities it may see."""
    now = gw.clock()
    codes = visible_authorities(gw, who)
    panels = build_panels(gw, codes, now, _parked(probe, gw, codes))
    ready = readiness.check(gw, probe)
    return DashboardView(
        generated_at=now,
        refresh_s=REFRESH_S,
        viewer=Viewer(who.role, who.authority),
        health=[HealthLine(c.name, c.ok, c.detail) for c in ready.checks]
        + _peer_certificate_warnings(gw, now),
        authorities=panels,
        attention=[line_of(r, who, now) for r in attention.records(gw.ledger, codes, LIST_LIMIT)],
        attention_total=sum(p.needs_human_total for p in panels),
        awaiting_receipt=[
            line_of(r, who, now) for r in stats.awaiting_receipt(gw.ledger, codes, LIST_LIMIT)
        ],
        awaiting_receipt_total=sum(p.awaiting_receipt for p in panels),
        recent=[line_of(r, who, now) for r in stats.latest(gw.ledger, codes, RECENT_LIMIT)],
        disputes=open_disputes(gw, codes),
    )
