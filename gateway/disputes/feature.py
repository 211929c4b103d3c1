"""Disputes as a feature: its tables, the applier for received ``Dispute``
messages (inbox snapshots and escalation notices), the escalation queues it
consumes, and its clock (escalating what is due, offering unacknowledged
escalations again)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.disputes import handover, receive, service
from gateway.disputes.tables import metadata
from gateway.feature import Feature, Job, Kit
from gateway.model import MessageType
from gateway.settings import Settings
from gateway.transport.topology import REGIONAL, Topology

# The clock counts working days: a few checks a second are plenty, and keep an
# idle gateway from polling its ledger twenty times a second.
CLOCK_IDLE_S = 0.25


def escalation_queues(settings: Settings, topology: Topology) -> Sequence[str]:
    """The escalation queues this gateway consumes."""
    queues = [topology.escalation(code) for code in settings.hosted]
    if settings.disputes.consume_regional:
        queues.append(topology.escalation(REGIONAL))
    return queues


def run_clock(kit: Kit) -> int:
    """Escalate what is due; offer unacknowledged escalations again."""
    return service.escalate_due(kit) + handover.resend_due(kit.settings, kit.ledger, kit.clock())


FEATURE = Feature(
    name="disputes",
    tables=(metadata,),
    appliers={MessageType.DISPUTE: receive.on_dispute},
    jobs=(Job("disputes-clock", run_clock, idle_s=CLOCK_IDLE_S),),
    queues=escalation_queues,
)
