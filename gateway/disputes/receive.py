"""What a received ``Dispute`` message does: the receiver's copy, and its escalations.

Two routes bring a signed dispute snapshot:
- the inbox: the other party's gateway telling this party of a change; only
  one party writing to the other is accepted;
- an escalation queue (an authority's own, or the regional group's): a notice
  for the person the stage addresses; it must come from a party and, on an
  authority's queue, be about a dispute that authority is a party to.

Either way the snapshot is merged into the receiver's copy (stages only
climb, a resolution is final, parties never change, history is the union),
and a resolution closes the copy's open escalations.
"""

from __future__ import annotations

from gateway.disputes import escalations, handover, store
from gateway.disputes.messages import parties
from gateway.errors import PolicyRefusal
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger.status import Route
from gateway.model import Dispute
from gateway.transport.topology import REGIONAL

RULE_PARTIES = "dispute.parties"
RULE_NOTICE_SENDER = "escalation.sender"
RULE_NOTICE_RECIPIENT = "escalation.recipient"


def _judge(msg: Received) -> Dispute:
    body = msg.env.body
    if not isinstance(body, Dispute):
        raise PolicyRefusal("dispute.body", "a Dispute message without a Dispute body")
    both = parties(body)
    sender, owner = msg.sender, msg.authority
    if msg.route is Route.INBOX:
        if owner not in both or sender not in both or sender == owner:
            raise PolicyRefusal(
                RULE_PARTIES,
                f"dispute {body.dispute_id} is between {both[0]} and {both[1]}; "
                f"{sender} -> {owner} is not one party writing to the other",
            )
        return body
    if sender not in both:
        raise PolicyRefusal(
            RULE_NOTICE_SENDER, f"sender {sender} is not a party to {body.dispute_id}"
        )
    if owner != REGIONAL and owner not in both:
        raise PolicyRefusal(
            RULE_NOTICE_RECIPIENT,
            f"notice about a dispute of {both} reached the escalation queue of {owner}",
        )
    if owner == REGIONAL and msg.env.header.recipient not in both:
        raise PolicyRefusal(
            RULE_NOTICE_RECIPIENT, f"recipient {msg.env.header.recipient} is not a party"
        )
    return body


def on_dispute(ctx: ApplyContext, msg: Received) -> Effect:
    """Fold a received snapshot into the receiver's copy; record a notice's escalation."""
    body = _judge(msg)
    header = msg.env.header
    owner = msg.authority

    def effect() -> None:
        merged = store.merge(
            ctx.conn,
            owner,
            body,
            correlation_id=header.correlation_id,
            legal_basis=header.legal_basis.value,
            consent_ref=header.consent_ref,
            source=msg.sender,
            now=ctx.now,
        )
        if merged.resolved_now:
            escalations.close_for_dispute(ctx.conn, owner, body.dispute_id)
        if msg.route is not Route.ESCALATION:
            return
        copy = store.load(ctx.conn, owner, body.dispute_id)
        fresh = escalations.record(
            ctx.conn,
            ctx.settings,
            owner,
            escalation_id=header.message_id,
            sender=msg.sender,
            body=body,
            content=msg.body,
            now=ctx.now,
            closed=copy is not None and copy.dispute.resolved,
        )
        if fresh:
            ledger, settings = ctx.outbox.ledger, ctx.settings
            ctx.later(
                lambda: handover.deliver(
                    settings, ledger, escalations.view_of_id(ledger, owner, header.message_id)
                )
            )

    return effect
