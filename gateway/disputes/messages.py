"""The signed ``Dispute`` message, and escalation notices on ``caf.escalation``.

Both parties' gateways exchange the dispute as a signed snapshot (parties,
stage, deadline, the whole history, outcome) through the ordinary outbox, so
both ledgers converge on the same history. An escalation or resolution also
puts signed notices in the dispute notice outbox, one per escalation queue:

- coordinators stage: both parties' authorities (``<code>.Dispute.<sender>``),
  for their CAF coordinators;
- regional stage: the regional group's queue (``regional.Dispute.<sender>``);
- line-managers stage: both parties' authorities, for each party's line manager;
- resolution: both parties' authorities (and the regional group if the dispute
  was at its stage).

The routing key always ends with the acting authority's code, so the broker's
topic permissions can refuse a forged sender (``gateway.transport.accounts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert

from gateway.context import Gateway
from gateway.disputes.store import StoredDispute
from gateway.disputes.tables import dispute_notices
from gateway.envelope.codec import envelope_to_element
from gateway.ledger import audit
from gateway.model import Dispute, DisputeStage, Envelope, LegalBasis, MessageType, Purpose
from gateway.services.signing import digest, new_envelope, signed_message
from gateway.transport.base import routing_key
from gateway.transport.topology import REGIONAL

TYPE = MessageType.DISPUTE.value


def counterpart_of(body: Dispute, authority: str) -> str:
    """The other party's authority."""
    return body.against.la_code if body.raised_by.la_code == authority else body.raised_by.la_code


def parties(body: Dispute) -> tuple[str, str]:
    return body.raised_by.la_code, body.against.la_code


def _envelope(gw: Gateway, stored: StoredDispute, sender: str, recipient: str) -> Envelope:
    basis = LegalBasis(stored.legal_basis)
    return new_envelope(
        gw.clock,
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


def send_to_counterpart(gw: Gateway, stored: StoredDispute, sender: str, conn: Connection) -> str:
    """Queue the signed snapshot for the other party (the ordinary outbox); its id."""
    recipient = counterpart_of(stored.dispute, sender)
    env = _envelope(gw, stored, sender, recipient)
    message = signed_message(gw, env, case_ref=stored.dispute.case_ref)
    gw.ledger.record([message], conn)
    event = _disclosure(stored, sender, message.message_id, message.digest, recipient)
    if event is not None:
        audit.append(gw.ledger, [event], conn)
    return message.message_id


def notice_targets(body: Dispute) -> tuple[str, ...]:
    """Which escalation queues hear of the dispute's current stage or resolution."""
    both = parties(body)
    if body.resolved:
        extra = (REGIONAL,) if body.stage is DisputeStage.REGIONAL_GROUP else ()
        return both + extra
    if body.stage is DisputeStage.REGIONAL_GROUP:
        return (REGIONAL,)
    if body.stage in (DisputeStage.COORDINATORS, DisputeStage.LINE_MANAGERS):
        return both
    return ()


@dataclass(frozen=True)
class QueuedNotice:
    message_id: str
    routing_key: str


def queue_notices(
    gw: Gateway, stored: StoredDispute, sender: str, conn: Connection, now: datetime
) -> list[QueuedNotice]:
    """Sign one notice per target queue and put them in the notice outbox."""
    queued: list[QueuedNotice] = []
    events: list[audit.AuditEvent] = []
    for target in notice_targets(stored.dispute):
        # The header names an LA; for the regional group's copy it is the other party.
        recipient = counterpart_of(stored.dispute, sender) if target == REGIONAL else target
        env = _envelope(gw, stored, sender, recipient)
        data = gw.signer(sender).sign(envelope_to_element(env))
        key = routing_key(target, TYPE, sender)
        conn.execute(
            insert(dispute_notices).values(
                sender=sender,
                dispute_id=stored.dispute.dispute_id,
                message_id=env.header.message_id,
                routing_key=key,
                body=data,
                created_at=now,
                attempts=0,
            )
        )
        queued.append(QueuedNotice(env.header.message_id, key))
        if target != sender:
            event = _disclosure(stored, sender, env.header.message_id, digest(data), target)
            if event is not None:
                events.append(event)
    if events:
        audit.append(gw.ledger, events, conn)
    return queued
