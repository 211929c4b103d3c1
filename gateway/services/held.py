"""Releasing held transfers once the child's consent covers them.

A record that could not leave for lack of consent is kept, unsigned, as
``HELD_LOCAL`` with its intended recipient and purpose ("the transfer waits
for new consent"). When new consent is recorded locally, every held transfer
of that child which the consent now covers is signed afresh (new created-at,
the new consent's reference, the same message id, which never left) and
queued: HELD_LOCAL -> SIGNED, with the reason in its history and a
disclosure in the audit log.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, select

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Envelope, LegalBasis, Purpose
from gateway.policy import sharing
from gateway.policy.config import policy_of
from gateway.policy.consent_register import Effective
from gateway.services.signing import signed_message


def release_held(
    gw: Gateway, conn: Connection, authority: str, child_key: str, consent: Effective
) -> list[str]:
    """Sign and queue ``authority``'s held transfers that ``consent`` now covers; their ids."""
    if not consent.given:
        return []
    policy = policy_of(gw.settings)
    limits = gw.settings.limits
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.message_id,
            messages.c.recipient,
            messages.c.purpose,
            messages.c.case_ref,
            messages.c.body,
        ).where(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.authority == authority,
            messages.c.child_key == child_key,
            messages.c.status == Status.HELD_LOCAL.value,
            messages.c.recipient != authority,
        )
    ).all()
    released: list[str] = []
    for pk, message_id, recipient, purpose_text, case_ref, body in rows:
        if body is None:
            continue
        purpose = Purpose(purpose_text) if purpose_text else Purpose.SHARE_CROSS_BORDER
        if sharing.covers(consent, policy, authority, recipient, purpose) is not None:
            continue
        held = element_to_envelope(
            xmlsafe.parse(
                bytes(body), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
            )
        )
        header = replace(
            held.header,
            created_at=gw.clock().replace(microsecond=0),
            legal_basis=LegalBasis.CONSENT,
            consent_ref=consent.reference(authority),
            purpose=purpose,
        )
        signed = signed_message(
            gw, Envelope(header, held.body), case_ref=case_ref, child_key=child_key
        )
        moved = gw.ledger.transition_from(
            [pk],
            [Status.HELD_LOCAL],
            Status.SIGNED,
            f"released: consent now covers {recipient} for {purpose.value}",
            conn,
            body=signed.body,
            digest=signed.digest,
            legal_basis=LegalBasis.CONSENT.value,
        )
        if not moved:
            continue
        audit.append(
            gw.ledger,
            [
                audit.AuditEvent(
                    actor="gateway",
                    action="DISCLOSURE",
                    authority=authority,
                    counterparty=recipient,
                    legal_basis=LegalBasis.CONSENT.value,
                    message_id=message_id,
                    digest=signed.digest,
                    detail=f"held transfer released on new consent ({case_ref or ''})".strip(),
                )
            ],
            conn,
        )
        released.append(message_id)
    return released
