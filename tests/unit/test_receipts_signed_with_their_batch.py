"""A small received batch is receipted by the transaction that records it, and the
consumer publishes that receipt before it acknowledges the batch (issue 14): at a
trickle a message waits for no other thread. Only the batch's own rows are claimed
(no other turn can have read them), the receipt is signed after the batch's audit
entries, a failure to sign or publish never fails the batch, and the consumer never
waits for a publishing connection to open. A larger batch (a backlog) is left to the
receipt loop. One in-memory gateway hosts both ends; messages travel through the real
outbox, receiving and receipt services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from local_systems import signed_inbound
from ops_helpers import Clock, make_gateway
from sqlalchemy import select, update
from support.gateways import claimed_until, deliver_queue, memory_gateway

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import LedgerError, SignatureError
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger import audit, audit_anchor
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import MessageType, Receipt
from gateway.services import delivery, receipts
from gateway.services.receiving import pipeline
from gateway.transport.base import OutgoingMessage, PublishResult
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import OUTBOX, RECEIPTS, Wakeups

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"
SENDER_INBOX, RECIPIENT_INBOX = f"caf.inbox.{SENDER}", f"caf.inbox.{RECIPIENT}"


class Publisher(MemoryTransport):
    """The in-memory broker, whose publishing connection can be closed (the consumer's
    still open) or whose publish can fail unexpectedly; counts connection openings."""

    def __init__(self) -> None:
        super().__init__()
        self.publisher_closed = False
        self.publish_raises = False
        self.opened = 0
        self.timeouts: list[tuple[float, bool]] = []  # (confirm timeout, open_only)

    def connect_publisher(self) -> bool:
        self.opened += 1
        self.publisher_closed = False
        return True

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        self.timeouts.append((timeout_s, open_only))
        if self.publish_raises:
            raise RuntimeError("the publisher's IO thread is gone")
        if self.publisher_closed and not open_only:
            self.connect_publisher()
        if self.publisher_closed:
            self.available = False  # the memory transport's "no connection open"
            try:
                return super().publish(messages, timeout_s, open_only=True)
            finally:
                self.available = True
        return super().publish(messages, timeout_s, open_only=open_only)


def sent(tmp_path: Path, count: int = 1) -> tuple[Gateway, Publisher, Wakeups, list[str]]:
    """A gateway hosting both ends; ``count`` messages from the sender published to the
    recipient's queue, not yet received; its wake-ups watched, as the worker does."""
    transport = Publisher()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=Clock(), transport=transport)
    wakeups = Wakeups()
    wakeups.watch(gw.ledger.engine)
    out = signed_inbound(gw, SENDER, RECIPIENT, count)
    gw.ledger.record(out)
    assert delivery.publish_outbox(gw).confirmed == count
    return gw, transport, wakeups, [m.message_id for m in out]


def receipts_of(gw: Gateway) -> list[MessageRecord]:
    return gw.ledger.find(authority=RECIPIENT, direction=Direction.OUTBOUND)


def owed(gw: Gateway) -> int:
    with gw.ledger.transaction() as conn:
        return len(conn.execute(select(messages.c.id).where(messages.c.receipt_due)).all())


def delivered(gw: Gateway, message_ids: list[str]) -> bool:
    found = [gw.ledger.find(message_id=m, authority=SENDER)[0] for m in message_ids]
    return all(r.status is Status.DELIVERED for r in found)


def test_a_small_batch_is_receipted_by_its_own_transaction_and_the_receipt_published_at_once(
    tmp_path: Path,
) -> None:
    gw, transport, wakeups, ids = sent(tmp_path, 3)
    receipts_woken, outbox_woken = wakeups.generation(RECEIPTS), wakeups.generation(OUTBOX)

    assert deliver_queue(gw, RECIPIENT_INBOX) == 3

    (receipt,) = receipts_of(gw)
    assert receipt.message_type == "Receipt"
    assert receipt.status is Status.SENT  # confirmed, before the batch was acknowledged
    assert claimed_until(gw, receipt.pk) is None
    assert owed(gw) == 0
    # Neither loop was woken for it, and the receipt loop finds nothing to do.
    assert wakeups.generation(RECEIPTS) == receipts_woken
    assert wakeups.generation(OUTBOX) == outbox_woken
    assert receipts.send_receipts(gw) == 0
    # Published on the open connection only, waiting briefly for its confirm.
    assert transport.timeouts[-1] == (delivery.INLINE_CONFIRM_S, True)
    assert gw.settings.broker.confirm_timeout_s > delivery.INLINE_CONFIRM_S
    # It travels on as any receipt: every message it covers is DELIVERED at the sender.
    assert deliver_queue(gw, SENDER_INBOX) == 1
    assert delivered(gw, ids)


def test_a_batch_larger_than_the_limit_is_left_to_the_receipt_loop(tmp_path: Path) -> None:
    count = pipeline.INLINE_RECEIPTS_MAX + 1
    gw, _transport, wakeups, ids = sent(tmp_path, count)
    receipts_woken = wakeups.generation(RECEIPTS)

    batches: list[int] = []
    assert deliver_queue(gw, RECIPIENT_INBOX, lambda b: batches.append(len(b))) == count

    assert batches == [count]  # one batch
    assert receipts_of(gw) == []
    assert owed(gw) == count
    assert wakeups.generation(RECEIPTS) > receipts_woken  # the loop is told
    assert receipts.send_receipts(gw) == count
    assert deliver_queue(gw, SENDER_INBOX) == 1
    assert delivered(gw, ids)


def audited(gw: Gateway) -> Gateway:
    """``gw`` with one more applier for the messages ``sent`` sends: it writes an audit
    entry for each (as received existence queries and forwarded records do)."""

    def applier(ctx: ApplyContext, msg: Received) -> Effect:
        event = audit.AuditEvent(
            "test", "RECEIVED", msg.authority, message_id=msg.env.header.message_id
        )
        return lambda: audit.append(ctx.kit.ledger, [event], ctx.conn)

    kind = MessageType.ISSUE_LOG_ENTRY
    return replace(gw, appliers={**gw.appliers, kind: (*gw.appliers.get(kind, ()), applier)})


def test_the_receipt_reports_the_audit_head_that_covers_its_batch(tmp_path: Path) -> None:
    both, transport, _wakeups, _ids = sent(tmp_path, 2)
    # Only a peer off this ledger anchors the chain (docs/security.md): the recipient's
    # process here hosts the recipient alone, on the same ledger and keys.
    gw = memory_gateway(
        tmp_path, (RECIPIENT,), clock=both.clock, transport=transport, keys_for=(SENDER, RECIPIENT)
    )
    with gw.ledger.transaction() as conn:
        before = audit_anchor.own_head(conn)

    assert deliver_queue(audited(gw), RECIPIENT_INBOX) == 2

    with gw.ledger.transaction() as conn:
        after = audit_anchor.own_head(conn)
    assert after.seq == before.seq + 2  # the batch's own entries
    (receipt,) = receipts_of(gw)
    body = gw.ledger.body_of(RECIPIENT, Direction.OUTBOUND, receipt.message_id)
    assert body is not None
    env = element_to_envelope(xmlsafe.parse(body, max_bytes=100_000, max_depth=64))
    assert isinstance(env.body, Receipt)
    assert env.body.audit_head == after


def test_with_no_publishing_connection_open_the_consumer_does_not_open_one_and_the_sender_loop_sends_the_receipt(  # noqa: E501
    tmp_path: Path,
) -> None:
    gw, transport, wakeups, ids = sent(tmp_path)
    transport.publisher_closed = True
    opened, outbox_woken = transport.opened, wakeups.generation(OUTBOX)

    assert deliver_queue(gw, RECIPIENT_INBOX) == 1

    assert transport.opened == opened  # the consumer never opened (nor waited for) one
    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SIGNED
    assert claimed_until(gw, receipt.pk) is None  # given back at once
    assert wakeups.generation(OUTBOX) == outbox_woken + 1  # to the sender loop
    assert transport.depth(SENDER_INBOX) == 0

    assert delivery.publish_outbox(gw).confirmed == 1  # the sender loop opens one
    assert transport.opened == opened + 1
    assert deliver_queue(gw, SENDER_INBOX) == 1
    assert delivered(gw, ids)


def test_a_publish_that_fails_unexpectedly_still_acknowledges_the_recorded_batch(
    tmp_path: Path,
) -> None:
    gw, transport, _wakeups, ids = sent(tmp_path)
    transport.publish_raises = True

    assert deliver_queue(gw, RECIPIENT_INBOX) == 1

    assert transport.depth(RECIPIENT_INBOX) == 0  # acknowledged, not redelivered
    (received,) = gw.ledger.find(message_id=ids[0], authority=RECIPIENT)
    assert received.status is Status.VERIFIED
    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SIGNED  # recorded, still claimed by this process
    # Its claim lapses and the sender loop publishes it, as for a process that died.
    transport.publish_raises = False
    now = gw.clock()
    lease = delivery.outbox_lease(gw)
    assert gw.ledger.claim_outbox(100, None, now, now + lease) == []
    later = now + lease + timedelta(seconds=1)
    assert [i.pk for i in gw.ledger.claim_outbox(100, None, later, later + lease)] == [receipt.pk]


def test_a_receipt_that_cannot_be_signed_is_left_to_the_receipt_loop_and_the_batch_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, _transport, wakeups, ids = sent(tmp_path, 2)
    receipts_woken = wakeups.generation(RECEIPTS)

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise SignatureError("the signing key is unreadable")

    with monkeypatch.context() as patched:
        patched.setattr(type(gw.outbox), "sign", refuse)
        assert deliver_queue(gw, RECIPIENT_INBOX) == 2

    assert gw.transport.depth(RECIPIENT_INBOX) == 0  # type: ignore[attr-defined]
    assert len(gw.ledger.find(authority=RECIPIENT, direction=Direction.INBOUND)) == 2
    assert receipts_of(gw) == []  # nothing of the receipt's savepoint is left
    assert owed(gw) == 2
    assert wakeups.generation(RECEIPTS) > receipts_woken  # the loop is told

    assert receipts.send_receipts(gw) == 2  # signing again
    assert deliver_queue(gw, SENDER_INBOX) == 1
    assert delivered(gw, ids)


def test_rows_another_transaction_receipted_meanwhile_are_never_receipted_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite the receipt loop's claim is a plain read: between it and its writes,
    # another transaction may receipt the same rows. Its turn must then roll back.
    monkeypatch.setattr(pipeline, "INLINE_RECEIPTS_MAX", 0)
    gw, _transport, _wakeups, _ids = sent(tmp_path, 2)
    deliver_queue(gw, RECIPIENT_INBOX)
    with gw.ledger.transaction() as conn:
        stale = gw.ledger.claim_receipts_due(conn, gw.hosted, 100)
    assert len(stale) == 2
    assert receipts.send_receipts(gw) == 2  # the other turn

    with (
        pytest.raises(LedgerError, match="receipted by another transaction"),
        gw.ledger.transaction() as conn,
    ):
        receipts.sign(gw, conn, stale)

    assert len(receipts_of(gw)) == 1


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "not-announced"])
def test_a_batch_that_makes_an_older_message_owe_a_receipt_leaves_the_receipt_loop_woken(
    tmp_path: Path, announced: bool
) -> None:
    # A received receipt for a recall passed on makes the recall's sender owed a
    # receipt again (lifecycle.receiver.relay_onward), in the batch's transaction.
    gw, _transport, wakeups, ids = sent(tmp_path)
    assert deliver_queue(gw, RECIPIENT_INBOX) == 1  # receipted by its own transaction
    (older,) = gw.ledger.find(message_id=ids[0], authority=RECIPIENT)

    def applier(ctx: ApplyContext, _msg: Received) -> Effect:
        def effect() -> None:
            if announced:
                ctx.kit.ledger.set_receipt_due([older.pk], ctx.conn)
            else:
                ctx.conn.execute(
                    update(messages).where(messages.c.id == older.pk).values(receipt_due=True)
                )

        return effect

    later = signed_inbound(gw, SENDER, RECIPIENT, 1)
    gw.ledger.record(later)
    assert delivery.publish_outbox(gw).confirmed == 1
    woken = wakeups.generation(RECEIPTS)
    kind = MessageType.ISSUE_LOG_ENTRY
    with_it = replace(gw, appliers={**gw.appliers, kind: (*gw.appliers[kind], applier)})
    assert deliver_queue(with_it, RECIPIENT_INBOX) == 1

    assert owed(gw) == 1  # the older message; the new one was receipted with its batch
    assert wakeups.generation(RECEIPTS) > woken  # so the loop is told
    assert receipts.send_receipts(gw) == 1


def test_a_failure_after_the_receipt_is_recorded_rolls_back_only_the_savepoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, _transport, wakeups, ids = sent(tmp_path, 2)
    woken = wakeups.generation(RECEIPTS)
    with monkeypatch.context() as patched:
        # The receipt is signed and recorded, then its rows are found receipted.
        patched.setattr(type(gw.ledger), "mark_receipted", lambda *_args: 0)
        assert deliver_queue(gw, RECIPIENT_INBOX) == 2

    assert receipts_of(gw) == []  # the recorded receipt went with the savepoint
    assert len(gw.ledger.find(authority=RECIPIENT, direction=Direction.INBOUND)) == 2
    assert owed(gw) == 2
    assert wakeups.generation(RECEIPTS) > woken
    assert receipts.send_receipts(gw) == 2
    assert deliver_queue(gw, SENDER_INBOX) == 1
    assert delivered(gw, ids)
