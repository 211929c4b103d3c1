"""Local delivery as a feature: the handover loop, file pick-ups and the
acknowledgement-deadline clock."""

from __future__ import annotations

from gateway.connectors import deadline, handover
from gateway.connectors.tables import metadata
from gateway.feature import Feature, Job, Kit
from gateway.wakeups import HANDOVER

# File pick-ups are not urgent: a couple of checks a second are plenty, and keep
# an idle gateway from polling its ledger.
PICKUP_IDLE_S = 0.5
# Deadlines are days long (``delivery.local_ack_deadline_s``): a look every ten
# seconds is plenty. The look reads every message still waiting for its local
# system, so with a backlog of 20,000 (a local system down for a day) each one
# costs tens of milliseconds: twice a second, that was a tenth of a core (issue 14).
DEADLINE_IDLE_S = 10.0
# The handover loop is woken by the commit that recorded a message to hand over
# (here or, on PostgreSQL, in a replica); unwoken it looks this often, for the
# messages whose retry after a failed handover fell due (the first step of
# delivery.local_retry_backoff_s is 1 s by default) and claims a killed replica left.
HANDOVER_RECHECK_S = 1.0


def run_pickups(kit: Kit) -> int:
    """Publish staged files, acknowledge the files local systems took."""
    return handover.sweep_taken(kit)


def run_deadline(kit: Kit) -> int:
    """Report what the acknowledgement deadline passed for."""
    return deadline.report_unacknowledged(kit)


FEATURE = Feature(
    name="local-delivery",
    tables=(metadata,),
    jobs=(
        # Claimed message by message: every replica hands over its share.
        Job(
            "local-handover",
            handover.deliver_pending,
            idle_s=HANDOVER_RECHECK_S,
            everywhere=True,
            topic=HANDOVER,
        ),
        Job("local-pickups", run_pickups, idle_s=PICKUP_IDLE_S),
        Job("local-deadline", run_deadline, idle_s=DEADLINE_IDLE_S),
    ),
)
