"""The status vocabulary of the ledger (DESIGN.md, Ledger)."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    OUTBOUND = "OUTBOUND"
    INBOUND = "INBOUND"


class Status(StrEnum):
    # outbound: ACCEPTED -> SIGNED -> SENT -> DELIVERED -> ACKNOWLEDGED
    ACCEPTED = "ACCEPTED"
    SIGNED = "SIGNED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    HELD_LOCAL = "HELD_LOCAL"
    RETRYING = "RETRYING"
    REJECTED = "REJECTED"
    DEAD_LETTERED = "DEAD_LETTERED"
    REPLAYED = "REPLAYED"
    UNDELIVERABLE = "UNDELIVERABLE"
    # inbound: RECEIVED -> VERIFIED -> DELIVERED_LOCAL -> ACKNOWLEDGED
    RECEIVED = "RECEIVED"
    VERIFIED = "VERIFIED"
    DELIVERED_LOCAL = "DELIVERED_LOCAL"
    QUARANTINED = "QUARANTINED"
    DUPLICATE = "DUPLICATE"
    # taken out of the inbox before the local system had it (erasure, recall)
    WITHDRAWN = "WITHDRAWN"
    # history notes only: the body and personal data were erased, the tombstone stays;
    # the sender recalled the message; a correction superseded it; the recipient
    # reported it opened (an AccessNotice)
    ERASED = "ERASED"
    RECALLED = "RECALLED"
    SUPERSEDED = "SUPERSEDED"
    ACCESSED = "ACCESSED"


# Outbound rows in these states are waiting for the sender loop to publish them.
OUTBOX_STATES = frozenset({Status.SIGNED, Status.RETRYING, Status.REPLAYED})
# Outbound rows in these states are waiting for the recipient gateway's receipt.
AWAITING_RECEIPT = frozenset({Status.SENT})
# An inbound message's local system had it once one of these was recorded in its history.
HANDED_OVER = (Status.DELIVERED_LOCAL.value, Status.ACKNOWLEDGED.value)
# Inbound rows in these states are in the recipient's inbox, not yet acknowledged.
IN_INBOX = frozenset({Status.VERIFIED, Status.DELIVERED_LOCAL})
# Outbound rows in these states have left this gateway (a disclosure was made).
HAS_LEFT = (
    Status.SENT.value,
    Status.DELIVERED.value,
    Status.ACKNOWLEDGED.value,
    Status.RETRYING.value,
)
# Legal bases (values) under which a message carries personal data.
DISCLOSING = ("CONSENT", "SAFEGUARDING")
# Final states: nothing more will happen to the message by itself.
FINAL_STATES = frozenset(
    {
        Status.DELIVERED,
        Status.ACKNOWLEDGED,
        Status.HELD_LOCAL,
        Status.REJECTED,
        Status.DEAD_LETTERED,
        Status.QUARANTINED,
        Status.UNDELIVERABLE,
        Status.WITHDRAWN,
    }
)


class Route(StrEnum):
    """Which exchange a message travels on, and so which queue it is consumed from."""

    INBOX = "inbox"  # caf.exchange -> the recipient's inbox queue
    ESCALATION = "escalation"  # caf.escalation -> an escalation queue (an LA's or regional)
