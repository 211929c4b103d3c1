"""Registers the dispute feature with the core: its tables, the applier for
received ``Dispute`` messages, and its periodic jobs (the escalation clock,
the notice outbox, the escalation queues, re-sending unacknowledged
escalations)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection

from gateway.context import Gateway
from gateway.disputes import escalations, service
from gateway.disputes import tables as _tables  # noqa: F401 - joins the ledger's metadata
from gateway.disputes.messages import parties
from gateway.disputes.notices import publish_notices
from gateway.disputes.store import merge
from gateway.errors import PolicyRefusal
from gateway.features import consumer, periodic
from gateway.model import Dispute, Envelope, MessageType
from gateway.services import apply
from gateway.transport.base import Delivery, Disposition
from gateway.transport.topology import REGIONAL, Topology

# The clock counts working days: a few checks a second are plenty, and keep an
# idle gateway from polling its ledger twenty times a second.
CLOCK_IDLE_S = 0.25


def apply_dispute(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    """Fold a received signed snapshot into ``authority``'s copy of the dispute."""
    body = env.body
    if not isinstance(body, Dispute):
        raise PolicyRefusal("dispute.body", "a Dispute message without a Dispute body")
    both = parties(body)
    sender = env.header.sender
    if authority not in both or sender not in both or sender == authority:
        raise PolicyRefusal(
            "dispute.parties",
            f"dispute {body.dispute_id} is between {both[0]} and {both[1]}; "
            f"{sender} -> {authority} is not one party writing to the other",
        )
    result = merge(
        conn,
        authority,
        body,
        correlation_id=env.header.correlation_id,
        legal_basis=env.header.legal_basis.value,
        consent_ref=env.header.consent_ref,
        source=sender,
        now=gw.clock(),
    )
    if result.resolved_now:
        escalations.close_for_dispute(conn, authority, body.dispute_id)


apply.register(MessageType.DISPUTE, apply_dispute)


def escalation_queues(gw: Gateway) -> list[str]:
    """The escalation queues this gateway consumes."""
    topology = Topology(gw.settings.broker.exchange.removesuffix(".exchange"))
    queues = [topology.escalation(code) for code in gw.hosted]
    if gw.settings.disputes.consume_regional:
        queues.append(topology.escalation(REGIONAL))
    return queues


@periodic("disputes-clock")
def run_clock(gw: Gateway) -> int:
    """Escalate what is due, publish notices, re-send unacknowledged escalations."""
    done = service.escalate_due(gw) + publish_notices(gw) + escalations.resend_due(gw)
    if not done:
        time.sleep(CLOCK_IDLE_S)
    return done


@consumer("disputes-escalation-queues", queues=escalation_queues)
def consume_escalations(gw: Gateway, batch: Sequence[Delivery]) -> Sequence[Disposition]:
    """Record notices from the hosted authorities' escalation queues."""
    return escalations.handle_batch(gw, batch)
