"""Local delivery as a feature: the handover loop and the acknowledgement-deadline clock."""

from __future__ import annotations

from gateway.connectors import deadline, handover
from gateway.connectors.tables import metadata
from gateway.feature import Feature, Job, Kit
from gateway.wakeups import HANDOVER

# Deadlines are days long and file pick-ups are not urgent: a couple of checks
# a second are plenty, and keep an idle gateway from polling its ledger.
CLOCK_IDLE_S = 0.5
# The handover loop is woken by the commit that recorded a message to hand over
# (here or, on PostgreSQL, in a replica); unwoken it looks this often, for the
# messages whose retry after a failed handover fell due (the first step of
# delivery.local_retry_backoff_s is 1 s by default) and claims a killed replica left.
HANDOVER_RECHECK_S = 1.0


def run_deadline(kit: Kit) -> int:
    """Acknowledge taken files, report what the deadline passed for."""
    return handover.sweep_taken(kit) + deadline.report_unacknowledged(kit)


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
        Job("local-deadline", run_deadline, idle_s=CLOCK_IDLE_S),
    ),
)
