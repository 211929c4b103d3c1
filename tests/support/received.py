"""Signed Assessments from Dudley (332) to Wolverhampton (336), as the broker hands them over."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.model import (
    Assessment,
    Envelope,
    ErasureGround,
    ErasureRequest,
    LegalBasis,
    MessageRef,
    Recall,
    RecallReason,
)
from gateway.transport.base import Delivery, routing_key
from gateway.transport.provenance import publishers_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "schemas" / "examples" / "assessment.xml"  # 332 -> 336


def assessments(
    signer: Gateway, receiver: Gateway, case_refs: Sequence[str], first_tag: int = 0
) -> list[Delivery]:
    """One delivery per case reference, signed by ``signer``'s 332, for ``receiver``'s
    inbox of 336: the example record with that case reference (the same reference
    twice is the same content; ``REF#n`` is case ``REF`` with other content)."""
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=1_000_000, max_depth=64)
    template = element_to_envelope(root)
    assert isinstance(template.body, Assessment)
    user = sorted(publishers_for(receiver.settings.broker, "332"))[0]
    out = []
    for tag, named in enumerate(case_refs, start=first_tag):
        ref, _, variant = named.partition("#")
        body = replace(template.body, case_ref=ref)
        if variant:
            body = replace(body, source_system=f"{body.source_system} ({variant})")
        header = replace(
            template.header,
            message_id=str(uuid.uuid4()),
            correlation_id=ref,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        signed = signer.outbox.sign(Envelope(header, body))
        assert signed.body is not None
        out.append(
            Delivery(
                receiver.topology.inbox("336"),
                routing_key("336", "Assessment", "332"),
                signed.body,
                signed.message_id,
                {},
                0,
                tag,
                user,
            )
        )
    return out


def recall_of(
    signer: Gateway, original: Delivery, correlation: str | None = None, tag_step: int = 1
) -> Delivery:
    """``signer``'s 332 recalling ``original`` from 336 (misdirected), signed, as the broker
    hands it over: on the original's thread unless ``correlation`` names another, its
    delivery tag ``tag_step`` after the original's."""
    env = element_to_envelope(xmlsafe.parse(original.body, max_bytes=1_000_000, max_depth=64))
    recall = signer.outbox.envelope(
        sender="332",
        recipient="336",
        body=Recall(
            MessageRef(env.header.message_id, hashlib.sha256(original.body).hexdigest()),
            RecallReason.MISDIRECTED,
        ),
        correlation=env.header.correlation_id if correlation is None else correlation,
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
        safeguarding=env.header.safeguarding,
        in_reply_to=env.header.message_id,
    )
    signed = signer.outbox.sign(recall)
    assert signed.body is not None
    return replace(
        original,
        routing_key=routing_key("336", "Recall", "332"),
        body=signed.body,
        message_id=signed.message_id,
        tag=original.tag + tag_step,
    )


def erasure_of(
    signer: Gateway, *originals: Delivery, reference: str = "DPO/2026/77", tag_step: int = 1
) -> Delivery:
    """``signer``'s 332 asking 336 to erase ``originals`` (consent withdrawn), signed, as
    the broker hands it over: its delivery tag ``tag_step`` after the last original's."""
    refs = []
    for original in originals:
        root = xmlsafe.parse(original.body, max_bytes=1_000_000, max_depth=64)
        message_id = element_to_envelope(root).header.message_id
        refs.append(MessageRef(message_id, hashlib.sha256(original.body).hexdigest()))
    request = signer.outbox.envelope(
        sender="332",
        recipient="336",
        body=ErasureRequest(reference, ErasureGround.CONSENT_WITHDRAWN, tuple(refs)),
        correlation=reference,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    signed = signer.outbox.sign(request)
    assert signed.body is not None
    last = originals[-1]
    return replace(
        last,
        routing_key=routing_key("336", "ErasureRequest", "332"),
        body=signed.body,
        message_id=signed.message_id,
        tag=last.tag + tag_step,
    )
