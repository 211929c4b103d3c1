"""The checks every received message passes, whatever queue it came from.

In order: the queue says whose copy it is (an inbox or an escalation queue of
a hosted authority, or the regional group's); the signature verifies against
the pinned certificate of the header's sender, and only the signed document
is used from then on; the body is decrypted (after the signature, never
before); the schema validates the plain document; the message is addressed
to the queue's owner; the routing key its publisher used (as the broker
delivered it: a header's word is never taken, ``transport.provenance``) names
that owner, the message type and the signed sender, whatever its shape (the
broker's topic permissions let each authority publish only keys ending in its
own code); and the broker account that published it (``user_id``, which
RabbitMQ validates) is the signed sender's own account or this gateway's.

Anything that fails is ``Refused`` with the reason, to be quarantined: never
retried, never dropped.

What a check hands on is plain data (``Passed``, ``Refused``: no parsed tree,
no key), so the same checks may run in a worker process (``check_pool``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from lxml import etree

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.encryption import DecryptionKeys, decrypt_envelope, is_encrypted
from gateway.envelope.schema import SchemaValidator
from gateway.envelope.verifying import Verified, Verifier
from gateway.errors import CafgwError, SchemaError, SignatureError, UnsafeXmlError
from gateway.ledger.records import CODE_WIDTH, MESSAGE_ID_WIDTH
from gateway.ledger.status import Route
from gateway.model import Envelope, MessageType
from gateway.outbox import content_digest, digest
from gateway.settings import Settings
from gateway.transport.base import Delivery
from gateway.transport.provenance import publishers_for
from gateway.transport.retry import attempt_of
from gateway.transport.topology import REGIONAL

NS = "{urn:caf-exchange:1}"
_QUOTED = re.compile(r"(?<=[Vv]alue )'[^']*'")

# The sender a quarantine row names when the signature held but the route or the
# publishing account did not (a member delivering bytes another member signed). The
# ledger keys rows by (sender, id, digest), and a refusal's row stands for later
# copies of its bytes (``pipeline``): under the signed sender's code it would take
# the key of the genuine delivery, so a member holding another's signed message
# before its delivery could have it quarantined for good. The reason names the
# signed sender, the route and the account.
UNPROVEN_DELIVERY = "?"

# Local records: the same content from one sender reaches the local system once
# (``pipeline``), so their checks also take the content's digest.
RECORD_TYPES = frozenset(
    {MessageType.ASSESSMENT, MessageType.CONSENT_CHANGE, MessageType.EVALUATION}
)


class CheckContext(Protocol):
    """What the checks read: a ``Gateway``, or a check process's own (``check_pool``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def verifier(self) -> Verifier: ...

    @property
    def schema(self) -> SchemaValidator: ...


@dataclass(frozen=True)
class Source:
    """Where a delivery came from: whose copy it is and by which route."""

    owner: str  # a hosted LA code, or "regional"
    route: Route


@dataclass(frozen=True)
class Signed:
    """What the pipeline keeps of a verified message (``Verified``, without its tree)."""

    sender: str
    """LA code of the sender, whose pinned certificate verified the signature."""
    message_id: str
    digest: str
    """SHA-256 hex of the message bytes as received (the dedup table, receipts)."""
    note: str | None
    """What verification took away, for the message's history (``Verified.note``)."""


@dataclass(frozen=True)
class Passed:
    """A message that passed every check."""

    source: Source
    verified: Signed
    env: Envelope
    raw: bytes  # what the ledger keeps: the signed document (decrypted where it was)
    content: str | None = None
    """The body's content digest (``outbox.content_digest``) of a local record
    received in an inbox (``RECORD_TYPES``), else None."""
    attempt: int = 0
    """Retries the broker has made of this delivery already (``transport.retry``;
    the header is believed only from the relay that makes them)."""


@dataclass(frozen=True)
class Refused:
    """A message that failed a check, with what could be read of its header."""

    source: Source
    reason: str
    sender: str
    """The header's sender; ``UNPROVEN_DELIVERY`` where the message was signed by its
    sender but delivered by a route or account not the sender's own."""
    message_id: str
    message_type: str
    digest: str
    # The sender is proven by its signature: it may be told with a REJECTED receipt.
    signature_ok: bool

    def __post_init__(self) -> None:
        # As the ledger keeps them (``records``): a repeat of these bytes is looked up
        # by what was recorded. Cut only there, a sender or id longer than its column
        # was not found again, and its second quarantine row broke the ledger's
        # unique key, failing the rest of its batch (a peer could repeat that).
        object.__setattr__(self, "sender", self.sender[:CODE_WIDTH])
        object.__setattr__(self, "message_id", self.message_id[:MESSAGE_ID_WIDTH])


def source_of(gw: Gateway, delivery: Delivery) -> Source:
    """Owner and route of the queue ``delivery`` was consumed from."""
    kind, owner = gw.topology.consumed(delivery.queue)
    return Source(owner, Route(kind))


def check(
    gw: CheckContext, source: Source, delivery: Delivery, now: datetime | None = None
) -> Passed | Refused:
    """Every check of one delivery; ``now``: when certificates must be valid (the
    verifier's clock when None)."""
    raw = delivery.body
    try:
        verified = gw.verifier.verify(raw, now=now)
    except CafgwError as exc:
        sender, message_id, mtype = _unverified_header(gw, raw)
        return Refused(source, f"signature: {exc}", sender, message_id, mtype, digest(raw), False)
    body_digest = verified.digest  # of the bytes received, as above

    raw = verified.signed_bytes  # act only on what was signed: no comments, canonical form

    def refused(reason: str, proven: bool = True) -> Refused:
        found = verified.root.find(f"{NS}Header/{NS}MessageType")
        mtype = (found.text or "?").strip()[:32] if found is not None else "?"
        return Refused(
            source, reason, verified.sender, verified.message_id, mtype, body_digest, proven
        )

    try:
        plain = _decrypted(gw, source.owner, verified)
    except CafgwError as exc:
        return refused(f"encryption: {exc}")
    try:
        gw.schema.validate(plain, verified.message_id)
        env = element_to_envelope(plain)
    except SchemaError as exc:
        # lxml quotes the offending value, which may be a child's name or
        # identifier; the reason is logged, so the values are left out.
        return refused(f"schema: {_QUOTED.sub(chr(39) + '…' + chr(39), str(exc))}")
    if plain is not verified.root:
        # The ledger keeps the decrypted envelope for the local system; the
        # digest (dedup, receipts) stays that of the signed bytes received.
        raw = etree.tostring(plain, encoding="UTF-8", xml_declaration=True)
    problem = _addressing_problem(source, env)
    if problem is not None:
        return refused(problem)
    problem = _routing_problem(source, env, delivery) or _publisher_problem(gw, env, delivery)
    if problem is not None:
        # Not proven to be who the route says: no receipt goes back on it, and the
        # row is not the signed sender's (``UNPROVEN_DELIVERY``).
        return replace(refused(problem, proven=False), sender=UNPROVEN_DELIVERY)
    content = None
    if source.route is Route.INBOX and env.header.message_type in RECORD_TYPES:
        content = content_digest(env.body)
    signed = Signed(verified.sender, verified.message_id, body_digest, verified.note)
    return Passed(source, signed, env, raw, content, attempt_of(delivery.headers))


def _addressing_problem(source: Source, env: Envelope) -> str | None:
    recipient = env.header.recipient
    if source.owner == REGIONAL:
        return None  # the regional group's copy names a party; the dispute rules check it
    if recipient != source.owner:
        where = "inbox" if source.route is Route.INBOX else "escalation queue"
        return f"addressed to {recipient} but delivered to the {where} of {source.owner}"
    return None


def _routing_problem(source: Source, env: Envelope, delivery: Delivery) -> str | None:
    header = env.header
    expected = f"{source.owner}.{header.message_type.value}.{header.sender}"
    if delivery.routing_key != expected:
        return (
            f"routing key {delivery.routing_key!r} does not name the queue's owner, the message "
            f"type and the signed sender (expected {expected!r}): forged routing"
        )
    return None


def _publisher_problem(gw: CheckContext, env: Envelope, delivery: Delivery) -> str | None:
    sender = env.header.sender
    if delivery.user_id is None:
        return (
            f"no user_id: the broker account that published this message for {sender} is "
            "unknown (gateways set user_id, which the broker validates): forged publisher"
        )
    allowed = publishers_for(gw.settings.broker, sender)
    if delivery.user_id not in allowed:
        return (
            f"published by broker user {delivery.user_id!r}, which may not publish for "
            f"{sender} (expected one of {sorted(allowed)}): forged publisher"
        )
    return None


def _unverified_root(gw: CheckContext, raw: bytes) -> etree._Element | None:
    """The message parsed, unverified, with the same hardened parser and limits as
    everything inbound; None when that parser refuses it (its DTD, its size)."""
    limits = gw.settings.limits
    try:
        return xmlsafe.parse(
            raw, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
    except UnsafeXmlError:
        return None


def _unverified_header(gw: CheckContext, raw: bytes) -> tuple[str, str, str]:
    """Best-effort sender, id and type for recording a message that failed checks:
    a message the parser refuses is recorded with "?" fields."""
    root = _unverified_root(gw, raw)
    if root is None:
        return "?", "?", "?"

    def text(tag: str) -> str:
        found = root.find(f"{NS}Header/{NS}{tag}")
        return (found.text or "?").strip()[:64] if found is not None else "?"

    return text("Sender"), text("MessageId"), text("MessageType")


def unverified_reply_to(gw: CheckContext, raw: bytes) -> str | None:
    """The id a message says it answers or names (``InReplyTo``), unverified: only for
    ordering a batch taken one by one (``pipeline._one_by_one``), never to act on."""
    root = _unverified_root(gw, raw)
    found = None if root is None else root.find(f"{NS}Header/{NS}InReplyTo")
    if found is None:
        return None
    return (found.text or "").strip()[:64] or None


def _decrypted(gw: CheckContext, owner: str, verified: Verified) -> etree._Element:
    """The verified envelope with its body decrypted; as it is when sent in clear.

    Runs after the signature is verified (nothing unauthenticated is
    decrypted) and before schema validation (the schema checks the plain body).
    A pair configured for encryption may not fall back to clear text.
    """
    if not is_encrypted(verified.root):
        if owner != REGIONAL and gw.settings.encryption.between(verified.sender, owner):
            raise SignatureError(
                f"encryption is on between {verified.sender} and {owner} "
                "but the body arrived in clear"
            )
        return verified.root
    if owner == REGIONAL:
        raise SignatureError("the regional group holds no key: an encrypted body cannot be read")
    folder = gw.settings.keys_dir / owner
    stamp = tuple(p.stat().st_mtime_ns for p in sorted(folder.glob("*.pem")) if p.is_file())
    keys = _decryption_keys(gw.settings.keys_dir, owner, stamp)
    limits = gw.settings.limits
    return decrypt_envelope(
        verified.root, keys, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
    )


@functools.lru_cache(maxsize=32)
def _decryption_keys(keys_dir: Path, authority: str, _stamp: tuple[int, ...]) -> DecryptionKeys:
    # Keyed on the files' modification times: a rotated key is picked up
    # without a restart, and the PEM files are not re-read per message.
    return DecryptionKeys.load(keys_dir, authority)
