"""One card per authority: what flowed in the last hour, what waits, what needs a human.

Every count on a card comes from the same query as the list it summarises
(receipts awaited, needs a human), so the card and the list never disagree.
A card is red when anything on it needs a human; ``alerts`` says what.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.context import Gateway
from gateway.ledger import stats
from gateway.ops import attention, rates
from gateway.ops.attention import Need
from gateway.ops.certificates import hosted_certificates
from gateway.ops.handover import HandoverState, handover_states
from gateway.ops.redact import redact_text

# What each need is called on a card, singular and plural (re-sending is not an alert;
# a failing handover has a line of its own).
_NEED_WORDS = {
    Need.DEAD_LETTERED: ("dead letter", "dead letters"),
    Need.QUARANTINED: ("quarantined message", "quarantined messages"),
    Need.REJECTED: ("rejected record or send", "rejected records or sends"),
    Need.UNDELIVERABLE: ("undeliverable message", "undeliverable messages"),
}


@dataclass(frozen=True)
class HandoverLine:
    connector: str
    waiting: int
    failing: bool
    failing_since: datetime | None
    last_error: str | None
    failures: int


@dataclass(frozen=True)
class AuthorityPanel:
    code: str
    name: str
    sent_last_hour: int
    delivered_last_hour: int
    received_last_hour: int
    failing_last_hour: int
    awaiting_receipt: int
    receipts_overdue: int
    needs_human: dict[str, int]
    needs_human_total: int
    handover: HandoverLine
    parked_inbound: int | None
    certificate_days_left: float | None
    certificate_warning: bool
    alert: bool
    alerts: list[str]


def _handover(state: HandoverState) -> HandoverLine:
    return HandoverLine(
        connector=state.connector,
        waiting=state.waiting,
        failing=state.failing,
        failing_since=state.failing_since,
        last_error=redact_text(state.last_error) if state.last_error else None,
        failures=state.failures,
    )


def _alerts(
    needs: Mapping[Need, int],
    handover: HandoverState,
    parked: int | None,
    overdue: int,
    cert_warning: bool,
    days: float | None,
) -> list[str]:
    out = []
    if handover.failing:
        out.append(
            f"handover failing: the local system ({handover.connector}) has not taken "
            f"{handover.waiting} message{'s' if handover.waiting != 1 else ''}"
        )
    for need in Need:
        n = needs.get(need, 0)
        if n and need in _NEED_WORDS:
            one, many = _NEED_WORDS[need]
            out.append(f"{n} {one if n == 1 else many}")
    if parked:
        out.append(f"{parked} parked on the broker")
    if overdue:
        out.append(f"{overdue} receipt{'s' if overdue != 1 else ''} overdue")
    if cert_warning and days is not None:
        out.append(f"signing certificate expires in {max(days, 0):.0f} days")
    return out


def build_panels(
    gw: Gateway, codes: Sequence[str], now: datetime, parked: Mapping[str, int | None]
) -> list[AuthorityPanel]:
    """The cards of ``codes``."""
    moved = rates.counts_since(gw.ledger, now - timedelta(hours=1), codes)
    awaiting = stats.awaiting_receipt_counts(gw.ledger, codes)
    overdue = stats.receipts_overdue(gw.ledger, now)
    needs = attention.counts(gw.ledger, codes)
    handovers = handover_states(gw, codes)
    certs = {c.authority: c for c in hosted_certificates(gw, now)}
    panels = []
    for code in codes:
        cert = certs.get(code)
        mine = {need: needs.get((code, need), 0) for need in Need}
        days = cert.days_left if cert else None
        warning = cert.warning if cert else False
        alerts = _alerts(
            mine, handovers[code], parked.get(code), overdue.get(code, 0), warning, days
        )
        panels.append(
            AuthorityPanel(
                code=code,
                name=gw.settings.directory.get(code).name,
                sent_last_hour=moved.get((code, "sent"), 0),
                delivered_last_hour=moved.get((code, "delivered"), 0),
                received_last_hour=moved.get((code, "received"), 0),
                failing_last_hour=moved.get((code, "failing"), 0),
                awaiting_receipt=awaiting.get(code, 0),
                receipts_overdue=overdue.get(code, 0),
                needs_human={need.value: n for need, n in mine.items() if n},
                needs_human_total=sum(mine.values()),
                handover=_handover(handovers[code]),
                parked_inbound=parked.get(code),
                certificate_days_left=days,
                certificate_warning=warning,
                alert=bool(alerts),
                alerts=alerts,
            )
        )
    return panels
