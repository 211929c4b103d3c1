"""The receiving side: verify, validate, deduplicate, record; then the broker may forget.

For each delivery from an authority's inbox queue: verify the signature
against the pinned certificate of the header's sender, act only on the
signed data, validate it against the schema, check that it was addressed to
this queue's authority and that the routing key names the signed sender,
check the created-at window for a new id, then deduplicate by
(sender, message id, digest). The batch is recorded in one transaction and
only then acknowledged. Permanent problems are quarantined (recorded, not
retried); a ledger failure is transient (the broker retries the batch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from lxml import etree

from gateway.context import Gateway
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.signing import Verified
from gateway.errors import CafgwError, LedgerError, PolicyRefusal, SchemaError
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import Envelope, MessageType, Receipt, ReceiptOutcome
from gateway.policy.child import child_key
from gateway.services import apply
from gateway.services.signing import digest
from gateway.transport.base import Delivery, Disposition, Verdict

log = logging.getLogger(__name__)

NS = "{urn:caf-exchange:1}"

RECEIPT_STATUS = {
    ReceiptOutcome.ACCEPTED: Status.DELIVERED,
    ReceiptOutcome.DUPLICATE: Status.DELIVERED,
    ReceiptOutcome.REJECTED: Status.REJECTED,
    ReceiptOutcome.UNDELIVERABLE: Status.UNDELIVERABLE,
}


@dataclass(frozen=True)
class _Good:
    verified: Verified
    env: Envelope
    raw: bytes


@dataclass(frozen=True)
class _Bad:
    reason: str
    sender: str
    message_id: str
    message_type: str
    digest: str
    signature_ok: bool  # the sender is proven: it may be told with a REJECTED receipt


def _unverified_header(raw: bytes) -> tuple[str, str, str]:
    """Best-effort sender, id and type for recording a message that failed checks."""
    try:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        root = etree.fromstring(raw[:200_000], parser)

        def text(tag: str) -> str:
            found = root.find(f"{NS}Header/{NS}{tag}")
            return (found.text or "?").strip()[:64] if found is not None else "?"

        return text("Sender"), text("MessageId"), text("MessageType")
    except (etree.XMLSyntaxError, ValueError):
        return "?", "?", "?"


def _check(gw: Gateway, authority: str, delivery: Delivery) -> _Good | _Bad:
    raw = delivery.body
    body_digest = digest(raw)
    try:
        verified = gw.verifier.verify(raw)
    except CafgwError as exc:
        sender, message_id, mtype = _unverified_header(raw)
        return _Bad(f"signature: {exc}", sender, message_id, mtype, body_digest, False)
    sender, message_id = verified.sender, verified.message_id
    found = verified.root.find(f"{NS}Header/{NS}MessageType")
    mtype = (found.text or "?").strip()[:32] if found is not None else "?"
    try:
        gw.schema.validate(verified.root, message_id)
        env = element_to_envelope(verified.root)
    except SchemaError as exc:
        return _Bad(f"schema: {exc}", sender, message_id, mtype, body_digest, True)
    header = env.header
    if header.recipient != authority:
        return _Bad(
            f"addressed to {header.recipient} but delivered to the inbox of {authority}",
            sender,
            message_id,
            mtype,
            body_digest,
            True,
        )
    parts = delivery.routing_key.split(".")
    if len(parts) == 3 and (parts[0] != authority or parts[2] != header.sender):
        return _Bad(
            f"routing key {delivery.routing_key!r} does not match the signed sender "
            f"{header.sender} and recipient {authority} (forged routing)",
            sender,
            message_id,
            mtype,
            body_digest,
            False,
        )
    return _Good(verified, env, raw)


def _window_problem(gw: Gateway, env: Envelope) -> str | None:
    now = gw.clock()
    limits = gw.settings.limits
    created = env.header.created_at
    if created > now + timedelta(seconds=limits.future_skew_s):
        return (
            f"created-at {created.isoformat()} is more than {limits.future_skew_s} s in the future"
        )
    if created < now - timedelta(seconds=limits.max_age_s):
        return (
            f"created-at {created.isoformat()} is older than {limits.max_age_s} s "
            "(stale or replayed)"
        )
    return None


def _quarantine(authority: str, bad: _Bad) -> NewMessage:
    return NewMessage(
        message_id=bad.message_id,
        direction=Direction.INBOUND,
        authority=authority,
        sender=bad.sender,
        recipient=authority,
        message_type=bad.message_type,
        correlation_id="?",
        legal_basis="?",
        statuses=((Status.RECEIVED, None), (Status.QUARANTINED, bad.reason)),
        digest=bad.digest,
        receipt_due=bad.signature_ok,
    )


def _accept(authority: str, good: _Good) -> NewMessage:
    header = good.env.header
    child = getattr(good.env.body, "child", None)
    return NewMessage(
        message_id=header.message_id,
        direction=Direction.INBOUND,
        authority=authority,
        sender=header.sender,
        recipient=header.recipient,
        message_type=header.message_type.value,
        correlation_id=header.correlation_id,
        legal_basis=header.legal_basis.value,
        statuses=((Status.RECEIVED, None), (Status.VERIFIED, None)),
        case_ref=getattr(good.env.body, "case_ref", None),
        purpose=header.purpose.value if header.purpose else None,
        digest=good.verified.digest,
        body=good.raw,
        receipt_due=header.message_type != MessageType.RECEIPT,
        child_key=child_key(child) if child is not None else None,
    )


def handle_batch(gw: Gateway, authority: str, deliveries: Sequence[Delivery]) -> list[Disposition]:
    """Process a batch from ``authority``'s inbox; one disposition per delivery."""
    checked = [_check(gw, authority, d) for d in deliveries]
    keys = [(c.verified.sender, c.verified.message_id) for c in checked if isinstance(c, _Good)]
    try:
        seen = gw.ledger.seen_inbound(authority, keys)
        receipts: list[tuple[Envelope, Receipt]] = []
        resend_receipts: set[str] = set()
        with gw.ledger.transaction() as conn:
            new: list[NewMessage] = []
            fresh: dict[tuple[str, str], str] = {}
            for item in checked:
                if isinstance(item, _Bad):
                    log.warning(
                        "quarantined %s from %s: %s", item.message_id, item.sender, item.reason
                    )
                    new.append(_quarantine(authority, item))
                    continue
                key = (item.verified.sender, item.verified.message_id)
                known = seen.get(key)
                known_digest = known.digest if known else fresh.get(key)
                is_receipt = item.env.header.message_type == MessageType.RECEIPT
                if known_digest is not None:
                    if known_digest != item.verified.digest:
                        new.append(
                            _quarantine(
                                authority,
                                _Bad(
                                    "message id already used with a different digest "
                                    "(forgery or replay)",
                                    key[0],
                                    key[1],
                                    item.env.header.message_type.value,
                                    item.verified.digest,
                                    False,
                                ),
                            )
                        )
                        continue
                    if known is not None:
                        gw.ledger.note(known.pk, Status.DUPLICATE, "re-sent by the sender", conn)
                        if known.receipt_message_id:
                            resend_receipts.add(known.receipt_message_id)
                    if is_receipt:
                        assert isinstance(item.env.body, Receipt)
                        receipts.append((item.env, item.env.body))
                    continue
                problem = _window_problem(gw, item.env)
                if problem is not None:
                    new.append(
                        _quarantine(
                            authority,
                            _Bad(
                                problem,
                                key[0],
                                key[1],
                                item.env.header.message_type.value,
                                item.verified.digest,
                                False,
                            ),
                        )
                    )
                    continue
                try:
                    apply.apply(gw, authority, item.env, conn)
                except PolicyRefusal as refusal:
                    new.append(
                        _quarantine(
                            authority,
                            _Bad(
                                f"policy {refusal}",
                                key[0],
                                key[1],
                                item.env.header.message_type.value,
                                item.verified.digest,
                                True,
                            ),
                        )
                    )
                    continue
                fresh[key] = item.verified.digest
                new.append(_accept(authority, item))
                if is_receipt:
                    assert isinstance(item.env.body, Receipt)
                    receipts.append((item.env, item.env.body))
            gw.ledger.record(new, conn)
        for receipt_id in resend_receipts:
            _requeue_receipt(gw, authority, receipt_id)
        for env, receipt in receipts:
            gw.ledger.mark_delivered(
                authority,
                [
                    (
                        i.message_id,
                        i.digest,
                        RECEIPT_STATUS[i.outcome],
                        i.reason or f"receipt {env.header.message_id}",
                    )
                    for i in receipt.items
                ],
            )
    except LedgerError as exc:
        log.error("ledger failed while recording a batch for %s: %s", authority, exc)
        return [Disposition(Verdict.RETRY, f"ledger: {exc}") for _ in deliveries]
    return [Disposition(Verdict.ACK) for _ in deliveries]


def _requeue_receipt(gw: Gateway, authority: str, receipt_id: str) -> None:
    """Answer a re-send with the original receipt (same id and bytes)."""
    found = gw.ledger.find(
        message_id=receipt_id, authority=authority, direction=Direction.OUTBOUND, with_history=False
    )
    for record in found:
        if record.status == Status.SENT:
            gw.ledger.transition(
                [record.pk], Status.RETRYING, "sender re-sent a message this receipt covers"
            )
