"""What received messages do for recall and correction, at the original's sender.

- Receipt: a recipient's proof of what it did about our recall or
  correction is kept per recipient (``outcomes``).
- Notification MISDIRECTED ("not ours"): the message it names is recalled,
  if we sent it to the authority that says so; nobody else can make us
  recall anything.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, select

from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.lifecycle import outcomes, sender
from gateway.lifecycle import tables as _tables  # noqa: F401 - tables join the ledger metadata
from gateway.model import (
    Envelope,
    MessageType,
    Notification,
    NotificationType,
    RecallReason,
    Receipt,
)
from gateway.services import apply

log = logging.getLogger(__name__)

RULE_NOT_THE_RECIPIENT = "recall.not-ours-from-another-authority"


def on_receipt(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    assert isinstance(env.body, Receipt)
    outcomes.apply_receipt(
        conn, authority, env.header.sender, env.header.message_id, env.body, gw.clock()
    )


def on_misdirected(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    body = env.body
    assert isinstance(body, Notification)
    if body.type != NotificationType.MISDIRECTED:
        return
    header = env.header
    original = header.in_reply_to
    sent_to = conn.execute(
        select(messages.c.recipient).where(
            messages.c.authority == authority,
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.message_id == (original or ""),
        )
    ).scalar()
    if original is None or sent_to != header.sender:
        raise PolicyRefusal(
            RULE_NOT_THE_RECIPIENT,
            f"message {header.message_id}: {header.sender} says a message was not for it, "
            f"but {authority} did not send it that message",
        )
    try:
        sender.recall(
            gw,
            authority,
            original,
            RecallReason.MISDIRECTED,
            f"{header.sender} said it was not theirs (notice {header.message_id})",
            actor=f"not ours ({header.sender})",
            conn=conn,
        )
    except PolicyRefusal as done:
        # Already recalled, or it never left: nothing more to do; the notice is recorded.
        log.info("not-ours notice %s: %s", header.message_id, done.rule)


apply.register(MessageType.RECEIPT, on_receipt)
apply.register(MessageType.NOTIFICATION, on_misdirected)
