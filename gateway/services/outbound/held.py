"""Releasing held transfers once the child's consent covers them.

A record that could not leave for lack of consent is kept, unsigned, as
``HELD_LOCAL`` with its intended recipient and purpose ("the transfer waits
for new consent"). When the outbound decision finds that new consent covers
a held copy (and no later export supersedes it), the copy is signed afresh
(new created-at, the new consent's reference, the same message id, which
never left) and queued: HELD_LOCAL -> SIGNED, with the reason in its history
and a disclosure in the audit log. A held copy is released once: the move is
conditional on it still being held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, select

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger import audit, bodies
from gateway.ledger.bodies import BODY
from gateway.ledger.status import Status
from gateway.ledger.tables import messages
from gateway.model import Envelope, LegalBasis
from gateway.policy.decision import Release


def release(
    gw: Gateway, conn: Connection, authority: str, child_key: str, releases: Sequence[Release]
) -> list[str]:
    """Sign and queue the held copies the decision releases; their message ids."""
    limits = gw.settings.limits
    released: list[str] = []
    for item in releases:
        copy = item.held
        body = conn.execute(select(BODY).where(messages.c.id == copy.pk)).scalar()
        if body is None:
            continue
        kept = element_to_envelope(
            xmlsafe.parse(
                bytes(body), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
            )
        )
        header = replace(
            kept.header,
            created_at=gw.clock().replace(microsecond=0),
            legal_basis=LegalBasis.CONSENT,
            consent_ref=item.consent_ref,
            purpose=copy.purpose,
        )
        signed = gw.outbox.sign(
            Envelope(header, kept.body), case_ref=copy.case_ref, child_key=child_key
        )
        moved = gw.ledger.transition_from(
            [copy.pk],
            [Status.HELD_LOCAL],
            Status.SIGNED,
            f"released: consent now covers {copy.recipient} for {copy.purpose.value}",
            conn,
            digest=signed.digest,
            content_digest=signed.content_digest,
            route_to=copy.recipient,
            legal_basis=LegalBasis.CONSENT.value,
        )
        if not moved:
            continue
        bodies.replace(conn, copy.pk, signed.body)
        audit.append(
            gw.ledger,
            [
                audit.AuditEvent(
                    actor="gateway",
                    action="DISCLOSURE",
                    authority=authority,
                    counterparty=copy.recipient,
                    legal_basis=LegalBasis.CONSENT.value,
                    message_id=copy.message_id,
                    digest=signed.digest,
                    detail=f"held transfer released on new consent ({copy.case_ref or ''})".strip(),
                )
            ],
            conn,
        )
        released.append(copy.message_id)
    return released
