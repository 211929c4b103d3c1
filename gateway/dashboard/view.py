"""What the dashboard shows a caller: flowing, stuck, and needing a human.

Built from the ledger for the authorities the caller may see (an authority
its own, an admin every hosted one). Only message ids, types, authorities,
statuses, counts and reasons are shown; reasons pass through the redactor
in case one quotes an identifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.api.auth import Caller
from gateway.context import Gateway
from gateway.errors import CafgwError
from gateway.ledger import stats
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ops import readiness
from gateway.ops.broker import BrokerProbe
from gateway.ops.certificates import hosted_certificates, pinned_certificates
from gateway.ops.disputes import DisputeLine, open_disputes
from gateway.ops.redact import redact_text
from gateway.transport.rabbit import topology_for

REFRESH_S = 5
NEEDS_ATTENTION = (Status.DEAD_LETTERED, Status.QUARANTINED, Status.REJECTED, Status.RETRYING)
LIST_LIMIT = 50
# A rejected record's reasons quote the offending values ("... (31/04/2014)"),
# which may be a child's data; the dashboard names the field, not the value.
_QUOTED_VALUE = re.compile(r" \([^()]*\)(?=\s|$)")
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
class AuthorityPanel:
    code: str
    name: str
    last_hour: dict[str, int]
    last_day: dict[str, int]
    sent_last_hour: int
    received_last_hour: int
    awaiting_receipt: int
    receipts_overdue: int
    retrying: int
    dead_lettered: int
    parked_inbound: int | None
    certificate_days_left: float | None
    certificate_warning: bool


@dataclass(frozen=True)
class MessageLine:
    message_id: str
    authority: str
    direction: str
    message_type: str
    counterparty: str
    status: str
    reason: str | None
    attempts: int
    updated_at: datetime
    deadline: datetime | None
    overdue: bool
    can_replay: bool


@dataclass(frozen=True)
class DashboardView:
    generated_at: datetime
    refresh_s: int
    viewer: Viewer
    health: list[HealthLine]
    authorities: list[AuthorityPanel]
    attention: list[MessageLine]
    awaiting_receipt: list[MessageLine]
    recent: list[MessageLine]
    disputes: list[DisputeLine]


def visible_authorities(gw: Gateway, who: Caller) -> list[str]:
    """The hosted authorities whose data this caller may see."""
    if who.is_admin:
        return list(gw.hosted)
    return [code for code in gw.hosted if code == who.authority]


def _line(r: MessageRecord, who: Caller, now: datetime) -> MessageLine:
    outbound = r.direction == Direction.OUTBOUND
    deadline = r.next_attempt_at if r.status == Status.SENT else None
    return MessageLine(
        message_id=r.message_id,
        authority=r.authority,
        direction=r.direction.value,
        message_type=r.message_type,
        counterparty=r.recipient if outbound else r.sender,
        status=r.status.value,
        reason=_shown_reason(r),
        attempts=r.attempts,
        updated_at=r.updated_at,
        deadline=deadline,
        overdue=deadline is not None and deadline < now,
        # Outbound dead letters are re-published, inbound ones handed over again.
        can_replay=who.is_admin and r.status == Status.DEAD_LETTERED,
    )


def _shown_reason(r: MessageRecord) -> str | None:
    if not r.reason:
        return None
    reason = r.reason
    if r.status == Status.REJECTED:
        reason = _QUOTED_VALUE.sub(" (value hidden)", reason)
    return redact_text(reason)


def _records(
    gw: Gateway, codes: Sequence[str], status: Status | None, limit: int
) -> list[MessageRecord]:
    found: list[MessageRecord] = []
    for code in codes:
        found += gw.ledger.find(authority=code, status=status, limit=limit, with_history=False)
    return sorted(found, key=lambda r: r.updated_at, reverse=True)[:limit]


def _by_status(counts: dict[tuple[str, str, str], int], code: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for (authority, _direction, status), n in counts.items():
        if authority == code:
            out[status] = out.get(status, 0) + n
    return dict(sorted(out.items()))


def _parked(probe: BrokerProbe, gw: Gateway) -> dict[str, int | None]:
    """Messages parked on the broker per authority (None when the broker is unreachable)."""
    topology = topology_for(gw.settings.broker)
    try:
        depths = probe.queue_depths()
    except CafgwError:
        return {}
    return {code: depths.get(topology.parking(code)) for code in gw.hosted}


def _panels(
    gw: Gateway, codes: Sequence[str], now: datetime, probe: BrokerProbe
) -> list[AuthorityPanel]:
    hour = gw.ledger.counts(since=now - timedelta(hours=1))
    day = gw.ledger.counts(since=now - timedelta(days=1))
    moved = stats.transition_counts_since(gw.ledger, now - timedelta(hours=1), codes)
    current = gw.ledger.counts()
    overdue = stats.receipts_overdue(gw.ledger, now)
    certs = {c.authority: c for c in hosted_certificates(gw, now)}
    parked = _parked(probe, gw)
    panels = []
    for code in codes:
        cert = certs.get(code)
        panels.append(
            AuthorityPanel(
                code=code,
                name=gw.settings.directory.get(code).name,
                last_hour=_by_status(hour, code),
                last_day=_by_status(day, code),
                sent_last_hour=moved.get((code, Status.SENT.value), 0),
                received_last_hour=moved.get((code, Status.VERIFIED.value), 0),
                awaiting_receipt=current.get((code, "OUTBOUND", Status.SENT.value), 0),
                receipts_overdue=overdue.get(code, 0),
                retrying=current.get((code, "OUTBOUND", Status.RETRYING.value), 0),
                dead_lettered=current.get((code, "OUTBOUND", Status.DEAD_LETTERED.value), 0)
                + current.get((code, "INBOUND", Status.DEAD_LETTERED.value), 0),
                parked_inbound=parked.get(code),
                certificate_days_left=cert.days_left if cert else None,
                certificate_warning=cert.warning if cert else False,
            )
        )
    return panels


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
    attention = [
        _line(r, who, now)
        for status in NEEDS_ATTENTION
        for r in _records(gw, codes, status, LIST_LIMIT)
    ]
    awaiting = [
        _line(r, who, now)
        for r in _records(gw, codes, Status.SENT, LIST_LIMIT)
        if r.direction == Direction.OUTBOUND and r.message_type != "Receipt"
    ]
    recent = [_line(r, who, now) for r in _records(gw, codes, None, RECENT_LIMIT)]
    ready = readiness.check(gw, probe)
    return DashboardView(
        generated_at=now,
        refresh_s=REFRESH_S,
        viewer=Viewer(who.role, who.authority),
        health=[HealthLine(c.name, c.ok, c.detail) for c in ready.checks]
        + _peer_certificate_warnings(gw, now),
        authorities=_panels(gw, codes, now, probe),
        attention=attention,
        awaiting_receipt=sorted(awaiting, key=lambda m: (not m.overdue, m.deadline or now)),
        recent=recent,
        disputes=open_disputes(gw, codes),
    )
