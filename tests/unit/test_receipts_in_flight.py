"""The consumer does not wait for its receipts' confirms (issue 14).

A small batch's receipt is recorded, claimed, by the transaction that records
the batch; the consumer sends it and acknowledges the batch without waiting
for the broker's confirm, and settles it (SENT, or back to the outbox) after
the next batch or when it has nothing to do. One in-memory gateway hosts both
ends; the broker's confirms arrive when the test says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from local_systems import signed_inbound
from ops_helpers import Clock, make_gateway
from sqlalchemy import select

from gateway.context import Gateway
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.services import delivery
from gateway.services.receiving import ReceiptsInFlight, handle_batch
from gateway.transport.base import (
    Delivery,
    Disposition,
    OutgoingMessage,
    PublishOutcome,
    PublishResult,
    Verdict,
)
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import OUTBOX, Wakeups
from gateway.worker import Worker

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"
SENDER_INBOX, RECIPIENT_INBOX = f"caf.inbox.{SENDER}", f"caf.inbox.{RECIPIENT}"


class Held:
    """A publish whose confirms have not arrived until ``HeldConfirms.confirm``."""

    def __init__(self, outcomes: list[PublishResult]) -> None:
        self.outcomes = outcomes
        self.done = False
        self.waited = False

    def results(self) -> list[PublishResult]:
        self.waited = not self.done  # the caller had to wait for them
        self.done = True
        return list(self.outcomes)


class HeldConfirms(MemoryTransport):
    """The in-memory broker: routes at once, confirms when told; or never confirms."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Held] = []
        self.never_confirms = False

    def start_publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> Held:
        results = self.publish(messages, timeout_s, open_only=open_only)
        if self.never_confirms:
            reason = f"no confirm within {timeout_s} s"
            results = [PublishResult(r.message_id, PublishOutcome.FAILED, reason) for r in results]
        held = Held(results)
        self.held.append(held)
        return held

    def confirm(self) -> None:
        for held in self.held:
            held.done = True


def sent(tmp_path: Path, count: int) -> tuple[Gateway, HeldConfirms, list[str]]:
    """``count`` messages from the sender in the recipient's queue, not yet received."""
    transport = HeldConfirms()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=Clock(), transport=transport)
    out = signed_inbound(gw, SENDER, RECIPIENT, count)
    gw.ledger.record(out)
    assert delivery.publish_outbox(gw).confirmed == count
    return gw, transport, [m.message_id for m in out]


def take(transport: MemoryTransport, queue: str, count: int) -> list[Delivery]:
    """The next ``count`` deliveries of ``queue``, unsettled (acknowledged by the test)."""
    taken: list[Delivery] = []
    stop = threading.Event()

    def keep(batch: Sequence[Delivery]) -> Sequence[Disposition]:
        taken.extend(batch)
        stop.set()
        return [Disposition(Verdict.ACK) for _ in batch]

    transport.consume([queue], keep, stop)
    assert len(taken) == count
    return taken


def receipts_of(gw: Gateway) -> list[MessageRecord]:
    return gw.ledger.find(authority=RECIPIENT, direction=Direction.OUTBOUND)


def claimed_until(gw: Gateway, pk: int) -> object:
    with gw.ledger.transaction() as conn:
        return conn.scalar(select(messages.c.claimed_until).where(messages.c.id == pk))


def test_a_batch_is_acknowledged_before_its_receipt_is_confirmed_and_the_receipt_marked_sent_after(
    tmp_path: Path,
) -> None:
    gw, transport, _ids = sent(tmp_path, 2)
    in_flight = ReceiptsInFlight()

    dispositions = handle_batch(gw, take(transport, RECIPIENT_INBOX, 2), in_flight)

    assert [d.verdict for d in dispositions] == [Verdict.ACK, Verdict.ACK]
    (receipt,) = receipts_of(gw)
    assert transport.depth(SENDER_INBOX) == 1  # sent
    assert receipt.status is Status.SIGNED  # not yet confirmed: the ledger still answers for it
    assert claimed_until(gw, receipt.pk) is not None  # and no sender loop takes it meanwhile
    in_flight.settle_confirmed()  # still under way: nothing marked
    assert receipts_of(gw)[0].status is Status.SIGNED

    transport.confirm()
    in_flight.settle_confirmed()
    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SENT
    assert claimed_until(gw, receipt.pk) is None


def test_the_next_batch_settles_the_receipt_of_the_one_before(tmp_path: Path) -> None:
    gw, transport, _ids = sent(tmp_path, 2)
    first, second = take(transport, RECIPIENT_INBOX, 2)
    in_flight = ReceiptsInFlight()

    handle_batch(gw, [first], in_flight)
    handle_batch(gw, [second], in_flight)

    earlier, later = sorted(receipts_of(gw), key=lambda r: r.pk)
    assert earlier.status is Status.SENT  # settled once the second batch sent its own
    assert transport.held[0].waited  # its confirm was awaited there, not before
    assert later.status is Status.SIGNED  # the second's is under way


def test_a_receipt_the_broker_never_confirms_goes_back_to_the_outbox_for_the_sender_loop(
    tmp_path: Path,
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    wakeups = Wakeups()
    wakeups.watch(gw.ledger.engine)
    outbox_woken = wakeups.generation(OUTBOX)
    transport.never_confirms = True
    in_flight = ReceiptsInFlight()

    (disposition,) = handle_batch(gw, take(transport, RECIPIENT_INBOX, 1), in_flight)
    assert disposition.verdict is Verdict.ACK  # recorded: acknowledged all the same
    in_flight.finish()

    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SIGNED
    assert claimed_until(gw, receipt.pk) is None  # given back at once, not after the lease
    assert wakeups.generation(OUTBOX) > outbox_woken
    transport.never_confirms = False
    assert delivery.publish_outbox(gw).confirmed == 1  # the sender loop sends it


def test_a_stopping_worker_settles_the_receipts_its_consumer_has_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    # The recipient's inbox only: the receipt's arrival back at the sender would be a
    # next batch, which settles it too (test_the_next_batch_settles_...).
    monkeypatch.setattr(Gateway, "consumed_queues", lambda _gw: [RECIPIENT_INBOX])
    worker = Worker(gw, transport, fallback_s=3600.0)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not receipts_of(gw) and time.monotonic() < deadline:
            time.sleep(0.01)
        (receipt,) = receipts_of(gw)
        assert receipt.status is Status.SIGNED  # sent, its confirm not yet in
    finally:
        worker.close()

    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SENT  # awaited and marked as the consumer stopped
    assert claimed_until(gw, receipt.pk) is None


def test_the_memory_consumer_calls_its_idle_hook_when_nothing_waits(tmp_path: Path) -> None:
    _gw, transport, _ids = sent(tmp_path, 1)
    stop = threading.Event()
    calls: list[int] = []

    def idle() -> None:
        calls.append(transport.depth(RECIPIENT_INBOX))
        stop.set()

    def handle(batch: Sequence[Delivery]) -> Sequence[Disposition]:
        return [Disposition(Verdict.ACK) for _ in batch]

    transport.consume([RECIPIENT_INBOX], handle, stop, idle)
    assert calls == [0]  # once the queue was empty, not before
