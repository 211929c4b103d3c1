"""Registers local delivery with the worker: the handover loop and the deadline clock."""

from __future__ import annotations

import time

from gateway.connectors import deadline, handover
from gateway.context import Gateway
from gateway.features import periodic

# Deadlines are days long and file pick-ups are not urgent: a couple of checks
# a second are plenty, and keep an idle gateway from polling its ledger.
CLOCK_IDLE_S = 0.5


@periodic("local-handover")
def run_handover(gw: Gateway) -> int:
    """Hand waiting messages to webhook and file-drop local systems."""
    return handover.deliver_pending(gw)


@periodic("local-deadline")
def run_deadline(gw: Gateway) -> int:
    """Acknowledge taken files, report what the deadline passed for."""
    done = handover.sweep_taken(gw) + deadline.report_unacknowledged(gw)
    if not done:
        time.sleep(CLOCK_IDLE_S)
    return done
