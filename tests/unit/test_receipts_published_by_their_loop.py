"""A receipt is published by the loop that signs it (issue 14): recorded already
claimed, in the transaction that marks the messages receipted, then published
once that commits, without a claim of its own or a turn of the sender loop.
What the broker does not take goes back to the outbox and wakes the sender loop.
At the sender, the receipt settles the sends it covers in the transaction that
records it. One in-memory gateway hosts both ends; messages travel through the real
outbox, receiving and receipt services.

A small batch is receipted by the transaction that records it
(``test_receipts_signed_with_their_batch.py``); here every batch is left to the
receipt loop, as a large one (a backlog) is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from local_systems import signed_inbound
from ops_helpers import Clock, make_gateway
from support.gateways import claimed_until, deliver_queue, watching
from support.sql import commits_during

from gateway.context import Gateway
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.services import delivery, receipts
from gateway.services.receiving import pipeline
from gateway.transport.base import OutgoingMessage, PublishOutcome, PublishResult
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import OUTBOX, RECEIPTS, Wakeups

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def receipts_left_to_their_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "INLINE_RECEIPTS_MAX", 0)


SENDER, RECIPIENT = "332", "336"
SENDER_INBOX, RECIPIENT_INBOX = f"caf.inbox.{SENDER}", f"caf.inbox.{RECIPIENT}"


class Refusing(MemoryTransport):
    """The in-memory broker, which can be down or refuse every message (a nack, or
    no confirm in time); counts the publishes tried."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.tried = 0

    def connect_publisher(self) -> bool:
        self.tried += 1
        return super().connect_publisher()

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        if self.refusing:
            return [PublishResult(m.message_id, PublishOutcome.FAILED, "nacked") for m in messages]
        return super().publish(messages, timeout_s, open_only=open_only)


def sent_and_received(tmp_path: Path) -> tuple[Gateway, Refusing, Wakeups, str]:
    """A gateway whose recipient has recorded one message from the sender, owed a
    receipt; its wake-ups watched from the start, as the worker does."""
    transport = Refusing()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=Clock(), transport=transport)
    wakeups = watching(gw)
    (message,) = signed_inbound(gw, SENDER, RECIPIENT, 1)
    gw.ledger.record([message])
    assert delivery.publish_outbox(gw).confirmed == 1
    assert deliver_queue(gw, RECIPIENT_INBOX) == 1
    return gw, transport, wakeups, message.message_id


def the_receipt(gw: Gateway) -> MessageRecord:
    (found,) = gw.ledger.find(authority=RECIPIENT, direction=Direction.OUTBOUND)
    assert found.message_type == "Receipt"
    return found


def test_a_receipt_is_published_by_the_loop_that_signs_it_and_left_out_of_the_sender_loop(
    tmp_path: Path,
) -> None:
    gw, transport, wakeups, message_id = sent_and_received(tmp_path)
    outbox_woken = wakeups.generation(OUTBOX)

    assert receipts.send_receipts(gw) == 1

    receipt = the_receipt(gw)
    assert receipt.status is Status.SENT  # confirmed by the broker, in this one call
    assert receipt.attempts == 1
    assert claimed_until(gw, receipt.pk) is None
    assert transport.depth(SENDER_INBOX) == 1
    # Recorded claimed: the sender loop was never woken for it, and finds nothing.
    assert wakeups.generation(OUTBOX) == outbox_woken
    now = gw.clock()
    assert gw.ledger.claim_outbox(100, None, now, now + timedelta(seconds=30)) == []

    # It travels on as any receipt: the sender's message is DELIVERED.
    assert deliver_queue(gw, SENDER_INBOX) == 1
    (sent,) = gw.ledger.find(message_id=message_id, authority=SENDER)
    assert sent.status is Status.DELIVERED


@pytest.mark.parametrize("broker", ["down", "refusing"])
def test_a_receipt_the_broker_does_not_take_goes_back_to_the_outbox_for_the_sender_loop(
    tmp_path: Path, broker: str
) -> None:
    gw, transport, wakeups, message_id = sent_and_received(tmp_path)
    outbox_woken, receipts_woken = wakeups.generation(OUTBOX), wakeups.generation(RECEIPTS)
    tried = transport.tried
    if broker == "down":
        transport.available = False
    else:
        transport.refusing = True

    assert receipts.send_receipts(gw) == 1  # recorded all the same

    assert transport.tried == tried + 1  # the receipt loop tried to publish it itself
    receipt = the_receipt(gw)
    assert receipt.status is Status.SIGNED
    assert claimed_until(gw, receipt.pk) is None  # given back at once, not at the lease's end
    assert wakeups.generation(OUTBOX) == outbox_woken + 1  # and the sender loop told so
    assert wakeups.generation(RECEIPTS) == receipts_woken
    assert transport.depth(SENDER_INBOX) == 0

    transport.available, transport.refusing = True, False
    assert delivery.publish_outbox(gw).confirmed == 1  # the sender loop's next turn
    assert the_receipt(gw).status is Status.SENT
    assert deliver_queue(gw, SENDER_INBOX) == 1
    (sent,) = gw.ledger.find(message_id=message_id, authority=SENDER)
    assert sent.status is Status.DELIVERED


def test_a_message_recorded_claimed_is_left_alone_until_its_claim_lapses(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=Clock())
    wakeups = watching(gw)  # before any transaction: none has marks left over
    now = gw.clock()
    lease = delivery.outbox_lease(gw)
    claimed, free = signed_inbound(gw, SENDER, RECIPIENT, 2)

    (claimed_pk,) = gw.ledger.record([claimed], claimed_until=now + lease)
    assert wakeups.generation(OUTBOX) == 0  # its recorder publishes it
    (free_pk,) = gw.ledger.record([free])
    assert wakeups.generation(OUTBOX) == 1

    taken = gw.ledger.claim_outbox(100, None, now, now + lease)
    assert [i.pk for i in taken] == [free_pk]
    gw.ledger.mark_sent([free_pk], None)
    # A recorder that died before publishing: the claim lapses and the row goes out.
    later = now + lease + timedelta(seconds=1)
    taken = gw.ledger.claim_outbox(100, None, later, later + lease)
    assert [i.pk for i in taken] == [claimed_pk]


def test_a_receipt_settles_our_sends_in_the_one_transaction_that_records_it(
    tmp_path: Path,
) -> None:
    gw, _transport, _wakeups, message_id = sent_and_received(tmp_path)
    assert receipts.send_receipts(gw) == 1

    commits = commits_during(gw.ledger.engine, lambda: deliver_queue(gw, SENDER_INBOX))

    # DELIVERED becomes visible at the very commit that records the receipt: no
    # second transaction, and no moment when the receipt is kept but not applied.
    assert commits == 1
    (sent,) = gw.ledger.find(message_id=message_id, authority=SENDER)
    assert sent.status is Status.DELIVERED
    (kept,) = gw.ledger.find(authority=SENDER, direction=Direction.INBOUND)
    assert kept.message_type == "Receipt"
