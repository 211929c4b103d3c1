"""Keep the audit heads received receipts carry; check the chain against them.

- Receipt: the signer's head is kept (to be given back to it later), and
  the heads of our own chain it gives back are kept as anchors.
- Job ``audit-anchor``: every ``audit.anchor_check_s`` each anchored entry
  is looked up (gone, or another hash: cut or rewritten); the outcome per
  (authority, peer) is what the metric ``cafgw_audit_anchor_mismatch``
  reports and the alert ``CafgwAuditAnchorMismatch`` fires on.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from gateway.feature import ApplyContext, Effect, Feature, Job, Kit, Received
from gateway.ledger import audit_anchor
from gateway.model import MessageType, Receipt

log = logging.getLogger(__name__)


def on_receipt(ctx: ApplyContext, msg: Received) -> Effect | None:
    receipt = msg.env.body
    assert isinstance(receipt, Receipt)
    if receipt.audit_head is None and not receipt.held_heads:
        return None  # a receipt from a gateway that does not anchor yet
    if not audit_anchor.anchors_here(msg.sender, ctx.kit.settings.hosted):
        return None  # an authority on this ledger holds nothing a cut would not reach

    def effect() -> None:
        audit_anchor.record_receipt(
            ctx.conn,
            msg.authority,
            msg.sender,
            msg.message_id,
            receipt.audit_head,
            receipt.held_heads,
            ctx.now,
        )

    return effect


def check_anchors(kit: Kit) -> int:
    """Check the chain against the heads peers hold, when ``audit.anchor_check_s`` has
    passed since the last check (by any process on this ledger); never busy."""
    now = kit.clock()
    last = audit_anchor.last_check_at(kit.ledger)
    if last is not None and now - last < timedelta(seconds=kit.settings.audit.anchor_check_s):
        return 0
    # Only the anchored entries are read: a check costs the same whatever the chain's
    # length (0.02 s; walking 100,000 keyed entries took 8 s). `cafgw audit verify` walks it all.
    for status in audit_anchor.check(kit.ledger, now, walk=False):
        if status.mismatches:
            log.error(
                "audit chain: %d of the %d heads %s holds for %s are not in the chain: %s",
                status.mismatches,
                status.anchors,
                status.peer,
                status.authority,
                status.detail,
            )
    return 0


FEATURE = Feature(
    name="anchoring",
    appliers={MessageType.RECEIPT: on_receipt},
    jobs=(Job("audit-anchor", check_anchors, idle_s=1.0),),
)
