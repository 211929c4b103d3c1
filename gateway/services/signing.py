"""Turn canonical envelopes into signed, recordable outbound messages."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from gateway.context import Gateway
from gateway.envelope.codec import envelope_to_element
from gateway.envelope.encryption import encrypt_envelope
from gateway.errors import ConfigError
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import (
    BODY_TYPE,
    Body,
    Envelope,
    Header,
    LegalBasis,
    Purpose,
    Safeguarding,
)

_CASE_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4bd5-9c2e-6a0d8f1e2c11")


def correlation_id(initiating_la: str, case_ref: str) -> str:
    """The case thread id: the same for every message about one local case."""
    return str(uuid.uuid5(_CASE_NAMESPACE, f"{initiating_la}:{case_ref}"))


def new_envelope(
    clock: Callable[[], datetime],
    *,
    sender: str,
    recipient: str,
    body: Body,
    correlation: str,
    legal_basis: LegalBasis,
    purpose: Purpose | None = None,
    consent_ref: str | None = None,
    safeguarding: Safeguarding | None = None,
    in_reply_to: str | None = None,
) -> Envelope:
    header = Header(
        message_id=str(uuid.uuid4()),
        correlation_id=correlation,
        message_type=BODY_TYPE[type(body)],
        sender=sender,
        recipient=recipient,
        created_at=clock().replace(microsecond=0),
        legal_basis=legal_basis,
        purpose=purpose,
        consent_ref=consent_ref,
        safeguarding=safeguarding,
        in_reply_to=in_reply_to,
    )
    return Envelope(header, body)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encryption_certificate(gw: Gateway, recipient: str) -> x509.Certificate:
    """The recipient's pinned certificate to encrypt to: the newest one in force."""
    current = gw.verifier.trust.current_for(recipient, gw.clock())
    if not current:
        raise ConfigError(
            f"encryption is on for {recipient} but no certificate of it is pinned and valid"
        )
    return max(current, key=lambda c: c.not_valid_before_utc)


def signed_message(
    gw: Gateway,
    env: Envelope,
    *,
    case_ref: str | None = None,
    child_key: str | None = None,
) -> NewMessage:
    """Sign ``env`` with its sender's key; the record goes ACCEPTED -> SIGNED.

    Where ``encryption.pairs`` names the sender and recipient, the body is
    first encrypted to the recipient's certificate and the signature covers
    the envelope holding the ciphertext.
    """
    header = env.header
    root = envelope_to_element(env)
    if gw.settings.encryption.between(header.sender, header.recipient):
        encrypt_envelope(root, _encryption_certificate(gw, header.recipient))
    data = gw.signer(header.sender).sign(root)
    return NewMessage(
        message_id=header.message_id,
        direction=Direction.OUTBOUND,
        authority=header.sender,
        sender=header.sender,
        recipient=header.recipient,
        message_type=header.message_type.value,
        correlation_id=header.correlation_id,
        legal_basis=header.legal_basis.value,
        purpose=header.purpose.value if header.purpose else None,
        statuses=((Status.ACCEPTED, None), (Status.SIGNED, None)),
        case_ref=case_ref,
        digest=digest(data),
        body=data,
        child_key=child_key,
    )
