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

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lxml import etree
from sqlalchemy import Connection

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.encryption import DecryptionKeys, decrypt_envelope, is_encrypted
from gateway.envelope.signing import Verified
from gateway.errors import (
    CafgwError,
    LedgerError,
    PolicyRefusal,
    SchemaError,
    SignatureError,
    UnsafeXmlError,
)
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


def _unverified_header(gw: Gateway, raw: bytes) -> tuple[str, str, str]:
    """Best-effort sender, id and type for recording a message that failed checks.

    Parsed with the same hardened parser and limits as everything inbound:
    a message refused for its DTD or size is recorded with "?" fields.
    """
    limits = gw.settings.limits
    try:
        root = xmlsafe.parse(
            raw, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
    except UnsafeXmlError:
        return "?", "?", "?"

    def text(tag: str) -> str:
        found = root.find(f"{NS}Header/{NS}{tag}")
        return (found.text or "?").strip()[:64] if found is not None else "?"

    return text("Sender"), text("MessageId"), text("MessageType")


def _check(gw: Gateway, authority: str, delivery: Delivery) -> _Good | _Bad:
    raw = delivery.body
    body_digest = digest(raw)
    try:
        verified = gw.verifier.verify(raw)
    except CafgwError as exc:
        sender, message_id, mtype = _unverified_header(gw, raw)
        return _Bad(f"signature: {exc}", sender, message_id, mtype, body_digest, False)
    sender, message_id = verified.sender, verified.message_id
    raw = verified.signed_bytes  # act only on what was signed: no comments, canonical form
    found = verified.root.find(f"{NS}Header/{NS}MessageType")
    mtype = (found.text or "?").strip()[:32] if found is not None else "?"
    try:
        plain = _decrypted(gw, authority, verified)
    except CafgwError as exc:
        return _Bad(f"encryption: {exc}", sender, message_id, mtype, body_digest, True)
    try:
        gw.schema.validate(plain, message_id)
        env = element_to_envelope(plain)
    except SchemaError as exc:
        # lxml quotes the offending value, which may be a child's name or
        # identifier; the reason is logged, so the values are left out.
        reason = _QUOTED.sub("'…'", str(exc))
        return _Bad(f"schema: {reason}", sender, message_id, mtype, body_digest, True)
    if plain is not verified.root:
        # The ledger keeps the decrypted envelope for the local system; the
        # digest (dedup, receipts) stays that of the signed bytes received.
        raw = etree.tostring(plain, encoding="UTF-8", xml_declaration=True)
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


_QUOTED = re.compile(r"(?<=[Vv]alue )'[^']*'")


def _decrypted(gw: Gateway, authority: str, verified: Verified) -> etree._Element:
    """The verified envelope with its body decrypted; as it is when sent in clear.

    Runs after the signature is verified (nothing unauthenticated is
    decrypted) and before schema validation (the schema checks the plain body).
    A pair configured for encryption may not fall back to clear text.
    """
    if not is_encrypted(verified.root):
        if gw.settings.encryption.between(verified.sender, authority):
            raise SignatureError(
                f"encryption is on between {verified.sender} and {authority} "
                "but the body arrived in clear"
            )
        return verified.root
    folder = gw.settings.keys_dir / authority
    stamp = tuple(p.stat().st_mtime_ns for p in sorted(folder.glob("*.pem")) if p.is_file())
    keys = _decryption_keys(gw.settings.keys_dir, authority, stamp)
    limits = gw.settings.limits
    return decrypt_envelope(
        verified.root, keys, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
    )


@functools.lru_cache(maxsize=32)
def _decryption_keys(keys_dir: Path, authority: str, _stamp: tuple[int, ...]) -> DecryptionKeys:
    # Keyed on the files' modification times: a rotated key is picked up
    # without a restart, and the PEM files are not re-read per message.
    return DecryptionKeys.load(keys_dir, authority)


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
        statuses=((Status.RECEIVED, None), (Status.VERIFIED, good.verified.note)),
        case_ref=getattr(good.env.body, "case_ref", None),
        purpose=header.purpose.value if header.purpose else None,
        digest=good.verified.digest,
        body=good.raw,
        receipt_due=header.message_type != MessageType.RECEIPT,
        child_key=child_key(child) if child is not None else None,
    )


def handle_batch(gw: Gateway, authority: str, deliveries: Sequence[Delivery]) -> list[Disposition]:
    """Process a batch from ``authority``'s inbox; one disposition per delivery.

    A message whose processing raises something unexpected (a bug, or a
    poison message an applier cannot take) must not hold up the rest: the
    batch, rolled back whole, is processed again one message at a time, and
    only the one that fails again gets RETRY. The broker then retries it
    with backoff and parks it once its budget is spent.
    """
    try:
        return _handle_batch(gw, authority, deliveries)
    except Exception as exc:  # why everything: isolating an unknown failure is the point
        if len(deliveries) == 1:
            # The exception text may quote message content; the type says enough.
            log.error(
                "processing %s for %s failed with %s; the broker will retry it",
                deliveries[0].message_id,
                authority,
                type(exc).__name__,
                extra={"message_id": deliveries[0].message_id, "authority": authority},
            )
            return [Disposition(Verdict.RETRY, f"processing failed: {type(exc).__name__}")]
        log.warning(
            "a batch of %d for %s failed with %s; processing it one by one",
            len(deliveries),
            authority,
            type(exc).__name__,
        )
        return [d for one in deliveries for d in handle_batch(gw, authority, [one])]


def _handle_batch(gw: Gateway, authority: str, deliveries: Sequence[Delivery]) -> list[Disposition]:
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
                        "quarantined %s from %s: %s",
                        item.message_id,
                        item.sender,
                        item.reason,
                        extra={"message_id": item.message_id, "authority": authority},
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
            gw.ledger.record(_without_repeats(gw, authority, new, conn), conn)
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


def _without_repeats(
    gw: Gateway, authority: str, new: list[NewMessage], conn: Connection
) -> list[NewMessage]:
    """Drop rows already recorded with the same (sender, id, digest), noting the repeat.

    A peer that got no receipt re-sends the same bytes; a message quarantined
    the first time is quarantined again, and the evidence row must not be
    duplicated (nor may the unique key fail the whole batch). The first
    decision on those bytes stands: the repeat is noted on the existing row.
    """
    keys = [(m.sender, m.message_id, m.digest) for m in new]
    existing = gw.ledger.inbound_rows(authority, keys, conn)
    kept: list[NewMessage] = []
    seen: set[tuple[str, str, str | None]] = set()
    for message, key in zip(new, keys, strict=True):
        if key in existing:
            last = message.statuses[-1][1] if message.statuses else None
            gw.ledger.note(existing[key], Status.DUPLICATE, last or "received again", conn)
        elif key not in seen:
            kept.append(message)
        seen.add(key)
    return kept


def _requeue_receipt(gw: Gateway, authority: str, receipt_id: str) -> None:
    """Answer a re-send with the original receipt (same id and bytes)."""
    found = gw.ledger.find(
        message_id=receipt_id, authority=authority, direction=Direction.OUTBOUND, with_history=False
    )
    gw.ledger.transition_from(
        [r.pk for r in found],
        (Status.SENT,),
        Status.RETRYING,
        "sender re-sent a message this receipt covers",
    )
