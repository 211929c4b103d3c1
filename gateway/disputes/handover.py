"""Handing escalations to the people addressed, and offering them again.

Delivery goes through the authority's connector: webhook or file drop
through ``gateway.connectors`` where ``authorities.yaml`` says so; otherwise
(and for the regional group, always) the escalation waits to be pulled
(``GET /v1/escalations`` + ``POST /v1/escalations/{id}/ack``, which works for
every authority whatever its connector). An escalation not acknowledged by
its deadline is offered again, up to ``disputes.resend_budget``; then it is
OVERDUE, which the dashboard shows.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gateway.connectors import base, registry
from gateway.disputes import escalations
from gateway.disputes.escalations import EscalationStatus, EscalationView
from gateway.errors import CafgwError
from gateway.ledger.store import Ledger
from gateway.model import MessageType
from gateway.settings import Settings
from gateway.transport.topology import REGIONAL

log = logging.getLogger(__name__)


def pushes(settings: Settings, authority: str) -> bool:
    """Whether escalations for ``authority`` are pushed by its connector (else pulled)."""
    return authority != REGIONAL and settings.directory.get(authority).connector.kind in (
        "webhook",
        "file",
    )


def deliver(settings: Settings, ledger: Ledger, escalation: EscalationView) -> None:
    """Hand ``escalation`` over through its authority's connector, when it pushes.

    A connector that took or placed it marks it DELIVERED; one that failed
    leaves it PENDING: it is offered again at its acknowledgement deadline,
    and it can be pulled meanwhile.
    """
    if not pushes(settings, escalation.authority):
        return
    try:
        connector = registry.connector_for(settings, escalation.authority)
    except CafgwError as exc:
        log.warning("escalation %s: connector unusable: %s", escalation.escalation_id, exc)
        return
    try:
        handed = connector.deliver(
            base.LocalMessage(
                pk=0,
                message_id=escalation.escalation_id,
                authority=escalation.authority,
                sender=escalation.sender,
                message_type=MessageType.DISPUTE.value,
                body=escalation.content,
                attempts=escalation.attempts - 1,
            )
        )
        if handed.outcome is base.Outcome.PLACED:
            connector.publish([escalation.escalation_id])
    except CafgwError as exc:
        log.warning("escalation %s: hand-over failed: %s", escalation.escalation_id, exc)
        return
    finally:
        connector.close()
    if handed.outcome in (base.Outcome.TAKEN, base.Outcome.PLACED):
        escalations.mark_delivered(ledger, escalation.authority, escalation.escalation_id)
    else:
        log.warning(
            "escalation %s not handed over (%s): %s",
            escalation.escalation_id,
            handed.outcome.value,
            handed.reason or "no reason given",
        )


def resend_due(settings: Settings, ledger: Ledger, now: datetime, limit: int = 200) -> int:
    """Offer unacknowledged escalations again, or mark them OVERDUE after the budget."""
    disputes = settings.disputes
    owners = list(settings.hosted) + ([REGIONAL] if disputes.consume_regional else [])
    changed = 0
    offered: list[tuple[str, str]] = []
    backoff = disputes.escalation_backoff()
    for item in escalations.due(ledger, owners, now, limit):
        over_budget = backoff.exhausted(item.attempts)
        values: dict[str, object] = (
            {"status": EscalationStatus.OVERDUE.value}
            if over_budget
            else {
                "status": EscalationStatus.PENDING.value,
                "attempts": item.attempts + 1,
                "ack_due_at": now + timedelta(seconds=backoff.wait_s(item.attempts + 1)),
            }
        )
        if not escalations.offer_again(ledger, item, values):
            continue
        changed += 1
        if over_budget:
            log.warning(
                "escalation %s for %s is overdue: not acknowledged after %d attempts",
                item.escalation_id,
                item.authority,
                item.attempts,
            )
        else:
            offered.append((item.authority, item.escalation_id))
    for authority, escalation_id in offered:
        deliver(settings, ledger, escalations.view_of_id(ledger, authority, escalation_id))
    return changed
