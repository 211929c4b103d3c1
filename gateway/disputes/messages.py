"""The signed ``Dispute`` message, and escalation notices on ``caf.escalation``.

Both parties' gateways exchange the dispute as a signed snapshot (parties,
stage, deadline, the whole history, outcome) through the ordinary outbox, so
both ledgers converge on the same history. An escalation or resolution also
queues signed notices in the same outbox, one per escalation queue (routed on
the escalation exchange):

- coordinators stage: both parties' authorities (``<code>.Dispute.<sender>``),
  for their CAF coordinators;
- regional stage: the regional group's queue (``regional.Dispute.<sender>``);
- line-managers stage: both parties' authorities, for each party's line manager;
- resolution: both parties' authorities;
- and, once the dispute has been at the regional stage, the regional group
  hears of every later stage and of the resolution too.

The routing key always ends with the acting authority's code, so the broker's
topic permissions can refuse a forged sender (``gateway.transport.accounts``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.disputes.store import StoredDispute
from gateway.ledger import audit
from gateway.ledger.status import Route
from gateway.model import Dispute, DisputeStage, Envelope, LegalBasis, Purpose
from gateway.outbox import Outbox
from gateway.transport.base import routing_key
from gateway.transport.topology import REGIONAL


def counterpart_of(body: Dispute, authority: str) -> str:
    """The other party's authority."""
    return body.against.la_code if body.raised_by.la_code == authority else body.raised_by.la_code


def parties(body: Dispute) -> tuple[str, str]:
    return body.raised_by.la_code, body.against.la_code


def _envelope(outbox: Outbox, stored: StoredDispute, sender: str, recipient: str) -> Envelope:
    basis = LegalBasis(stored.legal_basis)
    return outbox.envelope(
        sender=sender,
        recipient=recipient,
        body=stored.dispute,
        correlation=stored.correlation_id,
        legal_basis=basis,
        purpose=Purpose.DISPUTE_RESOLUTION,
        consent_ref=stored.consent_ref if basis is LegalBasis.CONSENT else None,
    )


def _disclosure(
    stored: StoredDispute, sender: str, message_id: str, digest: str | None, to: str
) -> audit.AuditEvent | None:
    if stored.legal_basis == LegalBasis.NO_PERSONAL_DATA.value:
        return None
    return audit.AuditEvent(
        actor="gateway",
        action="DISCLOSURE",
        authority=sender,
        counterparty=to if to != REGIONAL else None,
        legal_basis=stored.legal_basis,
        message_id=message_id,
        digest=digest,
        detail=f"Dispute {stored.dispute.dispute_id}"
        + (" to the regional coordinators group" if to == REGIONAL else ""),
    )


def send_to_counterpart(
    outbox: Outbox, stored: StoredDispute, sender: str, conn: Connection
) -> str:
    """Queue the signed snapshot for the other party's inbox; its id."""
    recipient = counterpart_of(stored.dispute, sender)
    message = outbox.sign(
        _envelope(outbox, stored, sender, recipient), case_ref=stored.dispute.case_ref
    )
    event = _disclosure(stored, sender, message.message_id, message.digest, recipient)
    outbox.queue(conn, [message], [event] if event is not None else [])
    return message.message_id


def notice_targets(body: Dispute, regional_involved: bool) -> tuple[str, ...]:
    """Which escalation queues hear of the dispute's current stage or resolution.

    The regional group, once a dispute has been at its stage, hears of every
    later stage and of the resolution, so its copy ends as the parties' do.
    """
    both = parties(body)
    extra = (REGIONAL,) if regional_involved or body.stage is DisputeStage.REGIONAL_GROUP else ()
    if body.resolved:
        return both + extra
    if body.stage is DisputeStage.REGIONAL_GROUP:
        return (REGIONAL,)
    if body.stage in (DisputeStage.COORDINATORS, DisputeStage.LINE_MANAGERS):
        return both + extra
    return ()


def regional_involved(body: Dispute) -> bool:
    """Whether the dispute has been at the regional group's stage."""
    return any(e.stage is DisputeStage.REGIONAL_GROUP for e in body.history)


@dataclass(frozen=True)
class QueuedNotice:
    message_id: str
    routing_key: str


def queue_notices(
    outbox: Outbox, stored: StoredDispute, sender: str, conn: Connection
) -> list[QueuedNotice]:
    """Sign one notice per target escalation queue and queue them in the outbox."""
    queued: list[QueuedNotice] = []
    signed = []
    events: list[audit.AuditEvent] = []
    body = stored.dispute
    for target in notice_targets(body, regional_involved(body)):
        # The header names an LA; for the regional group's copy it is the other party.
        recipient = counterpart_of(body, sender) if target == REGIONAL else target
        message = outbox.sign(
            _envelope(outbox, stored, sender, recipient),
            case_ref=body.case_ref,
            route=Route.ESCALATION,
            route_to=target,
        )
        signed.append(message)
        queued.append(
            QueuedNotice(message.message_id, routing_key(target, message.message_type, sender))
        )
        if target != sender:
            event = _disclosure(stored, sender, message.message_id, message.digest, target)
            if event is not None:
                events.append(event)
    outbox.queue(conn, signed, events)
    return queued
