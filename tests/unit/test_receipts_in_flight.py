"""The consumer does not wait for its receipts' confirms (issue 14).

A small batch's receipt is recorded, claimed, by the transaction that records
the batch; the consumer sends it and acknowledges the batch without waiting
for the broker's confirm, and settles it (SENT, or back to the outbox) in the
next batch's transaction if its confirm is in by then, else after that batch or
when it has nothing to do. One in-memory gateway hosts both ends; the broker's
confirms arrive when the test says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from local_systems import signed_inbound
from ops_helpers import Clock, make_gateway
from sqlalchemy import Connection, select
from support.gateways import claimed_until, watching
from support.sql import commits_during

from gateway.context import Gateway
from gateway.errors import (
    BrokerUnavailableError,
    LedgerError,
    LedgerUnavailableError,
    OutageError,
)
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import history
from gateway.services import delivery, receipts
from gateway.services.receiving import ReceiptsInFlight, handle_batch
from gateway.settings import BrokerSettings
from gateway.transport import consumer
from gateway.transport.base import (
    BatchHandler,
    Delivery,
    Disposition,
    IdleHook,
    OutgoingMessage,
    PublishOutcome,
    PublishResult,
    Verdict,
)
from gateway.transport.memory import MemoryTransport
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.reconnect import ReconnectPolicy
from gateway.wakeups import OUTBOX
from gateway.worker import Worker

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"
SENDER_INBOX, RECIPIENT_INBOX = f"caf.inbox.{SENDER}", f"caf.inbox.{RECIPIENT}"


class Held:
    """A publish whose confirms have not arrived until ``HeldConfirms.confirm``, or
    whose timeout has passed once ``HeldConfirms.time_out``."""

    def __init__(self, outcomes: list[PublishResult]) -> None:
        self.outcomes = outcomes
        self.done = False
        self.overdue = False
        self.waited = False

    def results(self) -> list[PublishResult]:
        self.waited = not self.done  # the caller had to wait for them
        self.done = True
        if self.overdue:
            reason = "no confirm within 2.0 s"
            return [
                PublishResult(r.message_id, PublishOutcome.FAILED, reason) for r in self.outcomes
            ]
        return list(self.outcomes)


class HeldConfirms(MemoryTransport):
    """The in-memory broker: routes at once, confirms when told (``confirm``), or lets
    the confirm timeout pass (``time_out``)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Held] = []

    def time_out(self) -> None:
        for held in self.held:
            held.overdue = True

    def start_publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> Held:
        held = self.pending(self.publish(messages, timeout_s, open_only=open_only))
        self.held.append(held)
        return held

    def pending(self, results: list[PublishResult]) -> Held:
        return Held(results)

    def confirm(self) -> None:
        for held in self.held:
            held.done = True


def sent(
    tmp_path: Path, count: int, transport: HeldConfirms | None = None
) -> tuple[Gateway, HeldConfirms, list[str]]:
    """``count`` messages from the sender in the recipient's queue, not yet received."""
    transport = HeldConfirms() if transport is None else transport
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=Clock(), transport=transport)
    out = signed_inbound(gw, SENDER, RECIPIENT, count)
    gw.ledger.record(out)
    assert delivery.publish_outbox(gw).confirmed == count
    return gw, transport, [m.message_id for m in out]


def when(condition: Callable[[], bool], within_s: float = 10.0) -> bool:
    """Whether ``condition`` holds, looked at until it does or ``within_s`` passed."""
    deadline = time.monotonic() + within_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


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
    in_flight.settle_ready()  # still under way: nothing marked
    assert receipts_of(gw)[0].status is Status.SIGNED

    transport.confirm()
    in_flight.settle_ready()
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


def one_receipt_confirmed(tmp_path: Path) -> tuple[Gateway, ReceiptsInFlight, Delivery, list[str]]:
    """A batch received, its receipt sent and confirmed; a second batch waits."""
    gw, transport, ids = sent(tmp_path, 2)
    first, second = take(transport, RECIPIENT_INBOX, 2)
    in_flight = ReceiptsInFlight()
    handle_batch(gw, [first], in_flight)
    transport.confirm()
    return gw, in_flight, second, ids


def test_a_receipt_confirmed_before_the_next_batch_is_marked_sent_by_that_batchs_transaction(
    tmp_path: Path,
) -> None:
    gw, in_flight, second, _ids = one_receipt_confirmed(tmp_path)

    commits = commits_during(gw.ledger.engine, lambda: handle_batch(gw, [second], in_flight))

    earlier, later = sorted(receipts_of(gw), key=lambda r: r.pk)
    assert earlier.status is Status.SENT
    assert claimed_until(gw, earlier.pk) is None
    assert later.status is Status.SIGNED  # the second's is under way
    assert commits == 1  # the batch's own: no transaction (and no flush) for the marks
    assert len(in_flight) == 1  # only the second's is left in flight


def sent_history(gw: Gateway, pk: int) -> list[str]:
    """The statuses in message ``pk``'s history that say it was sent."""
    with gw.ledger.transaction() as conn:
        rows = conn.execute(
            select(history.c.status).where(
                history.c.message_pk == pk, history.c.status == Status.SENT.value
            )
        ).all()
    return [str(r[0]) for r in rows]


def two_receipts_confirmed(tmp_path: Path) -> tuple[Gateway, ReceiptsInFlight, Delivery]:
    """Two batches received, their receipts sent and confirmed; a third waits."""
    gw, transport, _ids = sent(tmp_path, 3)
    first, second, third = take(transport, RECIPIENT_INBOX, 3)
    in_flight = ReceiptsInFlight()
    handle_batch(gw, [first], in_flight)
    handle_batch(gw, [second], in_flight)  # the first's confirm was awaited here
    transport.confirm()
    return gw, in_flight, third


def test_earlier_receipts_whose_marks_fail_half_way_are_each_marked_once_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, in_flight, third = two_receipts_confirmed(tmp_path)
    real = delivery.InFlight.mark
    calls = 0

    def mark(self: delivery.InFlight, conn: Connection | None) -> delivery.PublishSummary:
        nonlocal calls
        calls += 1
        if conn is not None and calls == 2:  # the first one's marks are written already
            raise RuntimeError("a fault while marking in the batch's transaction")
        return real(self, conn)

    monkeypatch.setattr(delivery.InFlight, "mark", mark)

    (disposition,) = handle_batch(gw, [third], in_flight)

    assert disposition.verdict is Verdict.ACK  # the batch is recorded all the same
    receipts = sorted(receipts_of(gw), key=lambda r: r.pk)
    assert [r.status for r in receipts] == [Status.SENT, Status.SENT, Status.SIGNED]
    for receipt in receipts[:2]:  # rolled back together, then marked once, alone
        assert sent_history(gw, receipt.pk) == ["SENT"]
        assert receipt.attempts == 1
    assert len(in_flight) == 1  # the third batch's own receipt


def test_a_batch_that_fails_after_marking_earlier_receipts_leaves_them_to_be_marked_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, in_flight, second, _ids = one_receipt_confirmed(tmp_path)

    def fails(*_args: object) -> bool:
        raise LedgerError("the ledger refused the batch's last read")

    # The batch's receipt asks this last, after the earlier receipts were marked.
    monkeypatch.setattr(gw.ledger, "receipts_owed", fails)

    (disposition,) = handle_batch(gw, [second], in_flight)

    assert disposition.verdict is Verdict.RETRY  # nothing of the batch was committed
    (earlier,) = receipts_of(gw)
    assert earlier.status is Status.SENT  # marked alone, after the batch rolled back
    assert sent_history(gw, earlier.pk) == ["SENT"]
    assert len(in_flight) == 0


def lose_the_transaction(conn: Connection) -> None:
    """What SQLite does by itself on a full disk or an I/O error: the whole transaction
    rolled back, under SQLAlchemy's feet."""
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.rollback()


def test_a_fault_that_loses_the_batchs_transaction_while_marking_receipts_gets_it_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, in_flight, second, ids = one_receipt_confirmed(tmp_path)

    def mark(self: delivery.InFlight, conn: Connection | None) -> delivery.PublishSummary:
        assert conn is not None
        lose_the_transaction(conn)
        raise RuntimeError("disk I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(delivery.InFlight, "mark", mark)
        (disposition,) = handle_batch(gw, [second], in_flight)

    assert disposition.verdict is Verdict.RETRY  # never acknowledged unrecorded
    received = gw.ledger.find(authority=RECIPIENT, direction=Direction.INBOUND)
    assert [r.message_id for r in received] == [ids[0]]
    (again,) = handle_batch(gw, [second], in_flight)  # the broker's next delivery
    assert again.verdict is Verdict.ACK
    received = gw.ledger.find(authority=RECIPIENT, direction=Direction.INBOUND)
    assert sorted(r.message_id for r in received) == sorted(ids)


def test_a_fault_that_loses_the_batchs_transaction_while_signing_its_receipt_gets_it_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    (only,) = take(transport, RECIPIENT_INBOX, 1)

    def sign(_gw: Gateway, conn: Connection, _due: object) -> receipts.Signed:
        lose_the_transaction(conn)
        raise RuntimeError("disk I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(receipts, "sign", sign)
        (disposition,) = handle_batch(gw, [only], ReceiptsInFlight())

    assert disposition.verdict is Verdict.RETRY  # before: ACK, and the message was lost
    assert gw.ledger.find(authority=RECIPIENT, direction=Direction.INBOUND) == []


def test_a_receipt_the_broker_never_confirms_goes_back_to_the_outbox_for_the_sender_loop(
    tmp_path: Path,
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    wakeups = watching(gw)
    outbox_woken = wakeups.generation(OUTBOX)
    in_flight = ReceiptsInFlight()

    (disposition,) = handle_batch(gw, take(transport, RECIPIENT_INBOX, 1), in_flight)
    assert disposition.verdict is Verdict.ACK  # recorded: acknowledged all the same
    transport.time_out()  # a quorum queue without a majority confirms nothing
    in_flight.finish()

    (receipt,) = receipts_of(gw)
    assert receipt.status is Status.SIGNED
    assert claimed_until(gw, receipt.pk) is None  # given back at once, not after the lease
    assert wakeups.generation(OUTBOX) > outbox_woken
    assert delivery.publish_outbox(gw).confirmed == 1  # the sender loop sends it


def test_a_stopping_worker_settles_the_receipts_its_consumer_has_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, worker = worker_with_receipt(tmp_path, monkeypatch, HeldConfirms())
    try:
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


def test_a_receipt_whose_confirm_timed_out_is_given_back_by_the_idle_consumer(
    tmp_path: Path,
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    wakeups = watching(gw)
    outbox_woken = wakeups.generation(OUTBOX)
    in_flight = ReceiptsInFlight()
    handle_batch(gw, take(transport, RECIPIENT_INBOX, 1), in_flight)
    (receipt,) = receipts_of(gw)

    in_flight.settle_ready()  # no confirm yet, timeout not passed: it waits
    assert claimed_until(gw, receipt.pk) is not None
    transport.time_out()  # a quorum queue without a majority confirms nothing
    in_flight.settle_ready()  # no next batch needed

    assert len(in_flight) == 0
    assert claimed_until(gw, receipt.pk) is None  # back to the outbox, not after the lease
    assert wakeups.generation(OUTBOX) > outbox_woken


class ConfirmedWhileLookedAt(Held):
    """A publish whose confirm lands just after the first look at it."""

    def __init__(self, outcomes: list[PublishResult]) -> None:
        super().__init__(outcomes)
        self.looks = 0

    @property  # type: ignore[override]
    def done(self) -> bool:
        self.looks += 1
        return self.looks > 1

    @done.setter
    def done(self, _value: bool) -> None:
        pass


def test_a_confirm_landing_while_the_receipts_are_looked_at_loses_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, transport, _ids = sent(tmp_path, 1)
    monkeypatch.setattr(transport, "pending", ConfirmedWhileLookedAt)
    in_flight = ReceiptsInFlight()
    handle_batch(gw, take(transport, RECIPIENT_INBOX, 1), in_flight)

    in_flight.settle_ready()
    in_flight.finish()

    assert [r.status for r in receipts_of(gw)] == [Status.SENT]


def test_receipts_in_flight_wait_out_a_ledger_outage_and_are_settled_once_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, transport, _ids = sent(tmp_path, 2)
    first, second = take(transport, RECIPIENT_INBOX, 2)
    in_flight = ReceiptsInFlight()
    handle_batch(gw, [first], in_flight)
    transport.confirm()
    ledger_type = type(gw.ledger)
    working = ledger_type.transaction

    def down(_self: object) -> object:
        raise LedgerUnavailableError("ledger unavailable: restarting")

    monkeypatch.setattr(ledger_type, "transaction", down)
    with pytest.raises(OutageError):  # the consumer holds the batch, and calls again
        handle_batch(gw, [second], in_flight)
    in_flight.settle_ready()  # idle meanwhile: still down
    assert len(in_flight) == 1  # kept, not dropped
    monkeypatch.setattr(ledger_type, "transaction", working)
    handle_batch(gw, [second], in_flight)
    in_flight.finish()

    assert [r.status for r in receipts_of(gw)] == [Status.SENT, Status.SENT]
    gw.clock.advance(41)  # type: ignore[attr-defined]  # past every claim
    assert delivery.publish_outbox(gw).confirmed == 0  # so none goes out twice


class LosesItsConsumer(HeldConfirms):
    """After one batch the consumer's connection is lost and does not come back, while
    the publisher's is fine."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def consume(
        self,
        queues: Sequence[str],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None = None,
    ) -> None:
        if self.lost:
            stop.wait(0.05)
            raise BrokerUnavailableError("the consumer's node does not answer")
        once = threading.Event()

        def handled(batch: Sequence[Delivery]) -> Sequence[Disposition]:
            once.set()
            return handler(batch)

        super().consume(queues, handled, once, idle)
        self.lost = True
        raise BrokerUnavailableError("the consumer lost its connection")


def worker_with_receipt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: HeldConfirms
) -> tuple[Gateway, Worker]:
    """A started worker consuming the recipient's inbox, once it recorded the receipt
    of the message that waited there."""
    gw, _transport, _ids = sent(tmp_path, 1, transport)
    # The recipient's inbox only: the receipt's arrival back at the sender would be a
    # next batch, which settles it too (test_the_next_batch_settles_...).
    monkeypatch.setattr(Gateway, "consumed_queues", lambda _gw: [RECIPIENT_INBOX])
    worker = Worker(gw, transport, fallback_s=3600.0)
    worker.start()
    assert when(lambda: bool(receipts_of(gw)))
    return gw, worker


def test_an_idle_worker_settles_a_receipt_once_its_confirm_is_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = HeldConfirms()
    gw, worker = worker_with_receipt(tmp_path, monkeypatch, transport)
    try:
        transport.confirm()
        assert when(lambda: receipts_of(gw)[0].status is Status.SENT)  # no next batch, no stop
    finally:
        worker.close()


def test_a_worker_whose_consumer_cannot_reconnect_still_settles_its_receipts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = LosesItsConsumer()
    gw, worker = worker_with_receipt(tmp_path, monkeypatch, transport)
    try:
        transport.confirm()
        assert when(lambda: receipts_of(gw)[0].status is Status.SENT)
        assert transport.lost
    finally:
        worker.close()


def test_a_consumer_with_no_connection_calls_its_idle_hook_before_each_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tries: list[int] = []
    idle_calls: list[int] = []

    def no_broker(params: object) -> object:
        tries.append(len(idle_calls))
        raise consumer.TransportError("no broker")

    monkeypatch.setattr(consumer, "open_blocking", no_broker)
    transport = RabbitTransport(
        BrokerSettings(),
        reconnect=ReconnectPolicy(attempts=3, initial_s=0.01, max_s=0.01, jitter_s=0),
    )

    with pytest.raises(BrokerUnavailableError):
        transport.consume(
            [RECIPIENT_INBOX], lambda b: [], threading.Event(), lambda: idle_calls.append(1)
        )
    assert tries == [1, 2, 3]  # the hook ran before every try
