"""The local acknowledgement deadline: tell the sender when the local system never took it.

A received message that the recipient's local system has not acknowledged
within ``delivery.local_ack_deadline_s`` of its arrival (default 5 days;
per authority under ``authority_delivery`` in ``config/gateway.yaml``) is
recorded ``UNDELIVERABLE`` and owed a receipt: the receipt loop then sends
the sender a signed Receipt item with outcome ``UNDELIVERABLE``, and the
sender's ledger shows the message as ``UNDELIVERABLE``. Once reported, the
message is no longer handed over or served by the inbox.
"""

from __future__ import annotations

from datetime import timedelta

from gateway.connectors import state
from gateway.feature import Kit
from gateway.ledger import dismissed
from gateway.ledger.status import Status

BATCH = 500


def report_unacknowledged(kit: Kit, limit: int = BATCH) -> int:
    """Mark overdue unacknowledged messages UNDELIVERABLE (receipt due); how many."""
    now = kit.clock()
    reported = 0
    for code in kit.hosted:
        deadline_s = kit.settings.delivery_for(code).local_ack_deadline_s
        pks = state.unacknowledged_before(
            kit.ledger, code, now - timedelta(seconds=deadline_s), limit
        )
        if not pks:
            continue
        with kit.ledger.transaction() as conn:
            reported += state.move_all(
                kit.ledger,
                pks,
                state.UNACKNOWLEDGED,
                Status.UNDELIVERABLE,
                f"the local system of {code} did not acknowledge it within {deadline_s:.0f} s",
                conn,
                receipt_due=True,
                next_attempt_at=None,
            )
            # One erased here (a dead letter its erasure dismissed): its sender is told
            # all the same, and nobody here is asked to act on it.
            dismissed.erased(kit.ledger, conn, pks, "the acknowledgement deadline")
    return reported
