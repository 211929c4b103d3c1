"""Signed receipts, sent only after the messages they cover are durably recorded.

One receipt covers every message a sender is owed a receipt for (each id
with its digest), signed once; it is recorded in the outbox like any
other message, so it too survives a crash and is re-sent when asked. It
carries this gateway's audit chain head and gives the sender back heads of
its chain it reported here (``gateway.ledger.audit_anchor``).

Whoever signs a receipt publishes it too, once the transaction that recorded
it (already claimed, ``Ledger.record(claimed_until=...)``) has committed: no
claim of its own and no wait for the sender loop (issue 14). The consumer does
not wait for the confirm either: it sends (``start_signed``) and settles later
(``finish_signed``, from ``receiving.ReceiptsInFlight``). What does not go
out goes back to the outbox for the sender loop. Two sign them (``sign``): a
small received batch's own transaction, for that batch's messages
(``receiving.pipeline._Receipt``: at a trickle a message then waits for no
other thread), and the receipt loop (``send_receipts``) for the rest: larger
batches (a backlog, one receipt for several), a batch whose receipt could not
be signed with it, and receipts made due elsewhere (a local system's missed
acknowledgement deadline).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from gateway.context import Gateway
from gateway.cpu_budget import BUDGET
from gateway.errors import BrokerUnavailableError, LedgerError, TransportError
from gateway.feature import ReceiptKey, ReceiptNote
from gateway.ledger import audit_anchor, locks
from gateway.ledger.records import OutboxItem, ReceiptDue, outbox_item
from gateway.ledger.status import Status
from gateway.model import LegalBasis, Receipt, ReceiptItem, ReceiptOutcome
from gateway.services import delivery

log = logging.getLogger(__name__)

MAX_ITEMS = 500


def _item(due: ReceiptDue, note: ReceiptNote | None = None) -> ReceiptItem:
    if due.status == Status.QUARANTINED:
        return ReceiptItem(due.message_id, due.digest, ReceiptOutcome.REJECTED, due.reason)
    if due.status == Status.UNDELIVERABLE:
        return ReceiptItem(due.message_id, due.digest, ReceiptOutcome.UNDELIVERABLE, due.reason)
    if due.status == Status.DUPLICATE:
        return ReceiptItem(due.message_id, due.digest, ReceiptOutcome.DUPLICATE, due.reason)
    if note is not None:
        # A recall, correction or erasure request: the item proves what was done.
        return ReceiptItem(
            due.message_id,
            due.digest,
            ReceiptOutcome.ACCEPTED,
            note.reason,
            note.action,
            note.handed_over_at,
        )
    return ReceiptItem(due.message_id, due.digest, ReceiptOutcome.ACCEPTED)


def _notes(
    gw: Gateway, conn: Connection, chunk: list[ReceiptDue]
) -> Mapping[ReceiptKey, ReceiptNote]:
    """What the features say they did about these messages (recalls, erasure requests)."""
    hooks = [f.receipt_notes for f in gw.features if f.receipt_notes is not None]
    if not hooks:
        return {}
    keys = [(d.authority, d.sender, d.message_id) for d in chunk]
    found: dict[ReceiptKey, ReceiptNote] = {}
    for hook in hooks:
        found.update(hook(conn, keys))
    return found


@dataclass(frozen=True)
class Signed:
    """Receipts signed and recorded in a transaction, claimed for this process to publish
    once it commits (``publish_signed``)."""

    covered: int = 0  # messages they cover
    receipts: tuple[OutboxItem, ...] = ()
    held_until: datetime | None = None  # the end of their claim (None: none signed)


def send_receipts(gw: Gateway, limit: int = 5000) -> int:
    """Sign one receipt per (hosted authority, sender) and publish them; returns the
    messages covered."""
    with BUDGET.timed("receipt"):
        # One transaction: the claimed rows stay locked (PostgreSQL: FOR UPDATE SKIP
        # LOCKED) until the receipts covering them are recorded, and a killed
        # replica's claim ends with its connection. Replicas sharing the ledger take
        # turns (``locks.RECEIPTS``): one that finds another signing skips its turn,
        # as that one's next turn covers what this one recorded (the commit that
        # made the rows due wakes every replica's receipt loop). Without turns each
        # replica signed its own receipts for its own share of every batch: the
        # cost of receipts per message grew with the number of replicas
        # (docs/performance.md, "Issue 18").
        with gw.ledger.transaction() as conn:
            if not locks.try_xact_lock(conn, locks.RECEIPTS):
                return 0
            signed = sign(gw, conn, gw.ledger.claim_receipts_due(conn, gw.hosted, limit))
        publish_signed(gw, signed)
        return signed.covered


def publish_signed(gw: Gateway, signed: Signed, *, open_only: bool = False) -> None:
    """Publish the receipts ``sign`` recorded, once its transaction has committed; what
    does not go out goes back to the outbox for the sender loop.

    ``open_only``: only on a publishing connection open now, with a confirm
    timeout of at most ``INLINE_CONFIRM_S`` (``delivery.publish_claimed``), for
    a caller that must not wait for a reconnect.
    """
    started = start_signed(gw, signed, open_only=open_only)
    if started is not None:
        finish_signed(started)


def start_signed(
    gw: Gateway, signed: Signed, *, open_only: bool = False
) -> delivery.InFlight | None:
    """``publish_signed``, returning once the receipts are sent: ``finish_signed`` takes
    their confirms. None: nothing to publish, or it could not start (left to the
    sender loop, as ``publish_signed`` says)."""
    if signed.held_until is None:
        return None
    try:
        return delivery.start_claimed(gw, signed.receipts, signed.held_until, open_only=open_only)
    except BrokerUnavailableError as exc:
        # gateway.transport.link has said the broker is down, once.
        log.debug("receipts left to the sender loop: %s", exc)
    except TransportError as exc:
        # Recorded, and given back to the outbox: the sender loop sends them.
        log.warning("receipts left to the sender loop: %s", exc)
    return None


def finish_signed(started: delivery.InFlight) -> None:
    """Await the confirms of receipts ``start_signed`` sent and mark them; what was not
    confirmed goes back to the outbox for the sender loop."""
    try:
        started.finish()
    except TransportError as exc:
        log.warning("receipts left to the sender loop: %s", exc)


def sign(gw: Gateway, conn: Connection, due: Sequence[ReceiptDue]) -> Signed:
    """Sign and record, in ``conn``'s transaction, the receipts covering ``due`` (rows
    the transaction claimed, ``Ledger.claim_receipts_due``), recorded claimed for this
    process to publish (``publish_signed``) and marking the rows receipted.

    Raises ``LedgerError`` when another transaction receipted one of the rows
    meanwhile (on SQLite the claim is a plain read): the caller's transaction
    must then roll back, or that message would be receipted twice.
    """
    covered = 0
    signed: list[OutboxItem] = []
    claimed_until: datetime | None = None
    groups: dict[tuple[str, str], list[ReceiptDue]] = defaultdict(list)
    for d in due:
        if d.sender in gw.settings.directory:
            groups[(d.authority, d.sender)].append(d)
    anchored = gw.settings.audit.heads_in_receipts
    hosted = gw.settings.hosted
    peers = {k for k in groups if audit_anchor.anchors_here(k[1], hosted)} if anchored else set()
    # The chain's head as it stands (a receipt adds no audit entry of its own).
    own = audit_anchor.own_head(conn) if peers else None
    for (authority, sender), items in groups.items():
        anchoring = (authority, sender) in peers
        head = own if anchoring else None
        held = audit_anchor.to_give_back(conn, sender) if anchoring else ()
        for start in range(0, len(items), MAX_ITEMS):
            chunk = items[start : start + MAX_ITEMS]
            notes = _notes(gw, conn, chunk)
            env = gw.outbox.envelope(
                sender=authority,
                recipient=sender,
                body=Receipt(
                    tuple(
                        _item(d, notes.get((d.authority, d.sender, d.message_id))) for d in chunk
                    ),
                    head,
                    held,
                ),
                correlation=chunk[0].message_id,
                legal_basis=LegalBasis.NO_PERSONAL_DATA,
            )
            message = gw.outbox.sign(env)
            if claimed_until is None:
                # The claim runs from the first record, not from the turn's start:
                # the reads and signing before it do not use up the lease.
                claimed_until = gw.clock() + delivery.outbox_lease(gw)
            (pk,) = gw.ledger.record([message], conn, claimed_until=claimed_until)
            marked = gw.ledger.mark_receipted([d.pk for d in chunk], env.header.message_id, conn)
            if marked != len(chunk):
                raise LedgerError(
                    f"receipt {env.header.message_id} from {authority} to {sender}: "
                    f"{len(chunk) - marked} of its {len(chunk)} messages were receipted "
                    "by another transaction meanwhile; rolled back, not sent twice"
                )
            signed.append(outbox_item(pk, message))
            covered += len(chunk)
    return Signed(covered, tuple(signed), claimed_until)
