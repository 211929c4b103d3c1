"""The one outbox: every message this gateway signs leaves through here.

Records, receipts, notices, replies to existence queries, dispute snapshots
and escalation notices are all built with ``envelope``, signed (and, where
``encryption.pairs`` says so, encrypted to the recipient) with ``sign``, and
recorded ACCEPTED -> SIGNED with their audit entries by ``queue``, in the
caller's transaction. The sender loop (``services.delivery``) publishes what
is queued; nothing else publishes.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree
from sqlalchemy import Connection

from gateway.envelope.codec import (
    body_octets,
    body_to_element,
    envelope_to_element,
    written_envelope,
)
from gateway.envelope.codec.canonical import NotPlain
from gateway.envelope.encryption import encrypt_envelope
from gateway.envelope.signing import Signer
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Route, Status
from gateway.ledger.store import Ledger
from gateway.model import BODY_TYPE, Body, Envelope, Header, LegalBasis, Purpose, Safeguarding
from gateway.settings import EncryptionSettings


def digest(data: bytes) -> str:
    """SHA-256 hex of message bytes: what receipts and the dedup table compare."""
    return hashlib.sha256(data).hexdigest()


def content_digest(body: Body) -> str:
    """SHA-256 of a body's canonical XML alone (no header): the same local record
    sent again has the same content digest, whatever its message id or time.

    Written straight to C14N (``codec.canonical``: 0.116 -> 0.065 ms a record,
    issue 14); what only lxml may write goes through lxml, which writes the same
    octets or raises the ``SchemaError`` naming the element.
    """
    try:
        return digest(body_octets(body))
    except (NotPlain, AttributeError):  # AttributeError: a writer used an API it lacks
        pass  # outside the handler: lxml's own error carries no context from here
    return digest(etree.tostring(body_to_element(body), method="c14n"))


def written_content_digest(envelope: etree._Element) -> str:
    """``content_digest`` of the body of ``envelope``, an unsigned Envelope element as
    ``envelope_to_element`` writes it, without writing the body again.

    The body element copied out of the envelope is a document of its own, with the
    namespaces it uses declared on it, as ``body_to_element`` writes one: the same
    canonical form (tests/unit/test_codec.py holds the two equal for every message
    type and for random envelopes). The body's canonical form taken in place is not:
    libxml2 then marks its children ``xmlns=""``. A quarter of the cost of writing
    the body afresh (issue 14).
    """
    return digest(etree.tostring(copy.deepcopy(envelope[1]), method="c14n"))


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
    """A new envelope with a fresh message id, created now (whole seconds, UTC)."""
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


def disclosure(message: NewMessage, actor: str = "gateway") -> audit.AuditEvent:
    """The audit entry of a message that discloses personal data."""
    return audit.AuditEvent(
        actor=actor,
        action="DISCLOSURE",
        authority=message.sender,
        counterparty=message.recipient,
        legal_basis=message.legal_basis,
        message_id=message.message_id,
        digest=message.digest,
        detail=f"{message.message_type} {message.case_ref or ''}".strip(),
    )


def safeguarding_override(message: NewMessage, approval: Safeguarding) -> audit.AuditEvent:
    """The audit entry of a share without consent on the SAFEGUARDING basis."""
    return audit.AuditEvent(
        actor=approval.approver,
        action="SAFEGUARDING_OVERRIDE",
        authority=message.sender,
        counterparty=message.recipient,
        legal_basis=LegalBasis.SAFEGUARDING.value,
        message_id=message.message_id,
        digest=message.digest,
        detail=approval.reason,
    )


@dataclass(frozen=True)
class Outbox:
    """Signs and records outbound messages for the authorities hosted here."""

    ledger: Ledger
    signers: Mapping[str, Signer]
    trust: TrustStore
    encryption: EncryptionSettings
    clock: Callable[[], datetime]

    def signer(self, code: str) -> Signer:
        try:
            return self.signers[code]
        except KeyError:
            raise ConfigError(
                f"authority {code} is not hosted by this gateway (no signing key)"
            ) from None

    def envelope(
        self,
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
        """A new envelope from this outbox's clock (see ``new_envelope``)."""
        return new_envelope(
            self.clock,
            sender=sender,
            recipient=recipient,
            body=body,
            correlation=correlation,
            legal_basis=legal_basis,
            purpose=purpose,
            consent_ref=consent_ref,
            safeguarding=safeguarding,
            in_reply_to=in_reply_to,
        )

    def sign(
        self,
        env: Envelope,
        *,
        case_ref: str | None = None,
        child_key: str | None = None,
        route: Route = Route.INBOX,
        route_to: str | None = None,
    ) -> NewMessage:
        """Sign ``env`` with its sender's key; the record goes ACCEPTED -> SIGNED.

        Where ``encryption.pairs`` names the sender and recipient, the body is
        first encrypted to the recipient's certificate and the signature covers
        the envelope holding the ciphertext. ``route``/``route_to`` say which
        exchange and queue owner it is published to (an inbox by default).
        """
        header = env.header
        try:
            root, body = written_envelope(env)
            content = digest(body)  # before the body may be encrypted
        except (NotPlain, AttributeError):  # as in content_digest: lxml writes it, or says why
            root = envelope_to_element(env)
            content = written_content_digest(root)
        if self.encryption.between(header.sender, header.recipient):
            encrypt_envelope(root, self._encryption_certificate(header.recipient))
        data = self.signer(header.sender).sign(root)
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
            route=route,
            route_to=route_to or header.recipient,
            content_digest=content,
        )

    def queue(
        self,
        conn: Connection,
        messages: Sequence[NewMessage],
        events: Sequence[audit.AuditEvent] = (),
    ) -> list[int]:
        """Record signed messages and their audit entries in the caller's transaction."""
        pks = self.ledger.record(messages, conn)
        if events:
            audit.append(self.ledger, list(events), conn)
        return pks

    def _encryption_certificate(self, recipient: str) -> x509.Certificate:
        """The recipient's pinned certificate to encrypt to: the newest one in force."""
        current = self.trust.current_for(recipient, self.clock())
        if not current:
            raise ConfigError(
                f"encryption is on for {recipient} but no certificate of it is pinned and valid"
            )
        return max(current, key=lambda c: c.not_valid_before_utc)
