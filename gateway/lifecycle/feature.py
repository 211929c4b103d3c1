"""What received messages do for recall and correction, at both ends.

At the original's recipient (``receiver``):

- Recall, Correction: from the original's sender only; the original is
  withdrawn from the local system's inbox or the notice is passed on to it,
  and the receipt item says which.
- the job ``access-notices``: batched AccessNotices to the senders of
  records opened here (``access``), where switched on.

At the original's sender:

- AccessNotice: the openings it reports are noted on our messages' history.
- Receipt: a recipient's proof of what it did about our recall or
  correction is kept per recipient (``outcomes``).
- Notification MISDIRECTED ("not ours"): the message it names is recalled,
  if we sent it to the authority that says so; nobody else can make us
  recall anything.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from gateway.errors import PolicyRefusal
from gateway.feature import ApplyContext, Effect, Feature, Job, Received
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.lifecycle import access, outcomes, receiver, sender, tables
from gateway.model import (
    MessageType,
    Notification,
    NotificationType,
    RecallReason,
    Receipt,
)
from gateway.wakeups import RECEIPTS

log = logging.getLogger(__name__)

RULE_NOT_THE_RECIPIENT = "recall.not-ours-from-another-authority"
# Batches are access_notice_batch_s apart (a minute by default): a check a second is plenty.
ACCESS_IDLE_S = 1.0


def on_receipt(ctx: ApplyContext, msg: Received) -> Effect:
    receipt = msg.env.body
    assert isinstance(receipt, Receipt)

    def effect() -> None:
        passed_on = outcomes.apply_receipt(
            ctx.conn, msg.authority, msg.sender, msg.message_id, receipt, ctx.now
        )
        # A recall we passed on for a forwarded record: its sender learns the outcome,
        # in a receipt owed again (the receipt loop is woken once this commits).
        if passed_on and receiver.relay_onward(ctx.conn, msg.authority, msg.sender, msg.message_id):
            ctx.kit.ledger.announce(ctx.conn, RECEIPTS)

    return effect


def on_misdirected(ctx: ApplyContext, msg: Received) -> Effect | None:
    body = msg.env.body
    assert isinstance(body, Notification)
    if body.type != NotificationType.MISDIRECTED:
        return None
    env, conn, authority = msg.env, ctx.conn, msg.authority
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

    def effect() -> None:
        try:
            sender.recall(
                ctx.kit,
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

    return effect


FEATURE = Feature(
    name="lifecycle",
    tables=(tables.metadata,),
    appliers={
        MessageType.RECEIPT: on_receipt,
        MessageType.NOTIFICATION: on_misdirected,
        MessageType.RECALL: receiver.on_recall,
        MessageType.CORRECTION: receiver.on_correction,
        MessageType.ACCESS_NOTICE: access.on_access_notice,
    },
    jobs=(Job("access-notices", access.send_access_notices, idle_s=ACCESS_IDLE_S),),
    receipt_notes=receiver.receipt_notes,
    on_arrival=receiver.on_arrival,
)
