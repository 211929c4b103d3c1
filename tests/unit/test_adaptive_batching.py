"""Batches that adapt to the load: no fixed wait at a trickle, full batches under a backlog.

The consumer waits only while it has nothing to hand over; the worker's
loops sleep until there is work (``Wakeups``) instead of polling.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from policy_support import memory_gateway
from sqlalchemy import create_engine, text

from gateway.errors import CafgwError
from gateway.ledger.status import Direction, Status
from gateway.transport.base import Delivery
from gateway.transport.consumer import Batching, gather
from gateway.wakeups import HANDOVER, OUTBOX, RECEIPTS, TOPICS, Wakeups, mark
from gateway.worker import Step, Worker
from tests.local_systems import signed_inbound


def _delivery(n: int) -> Delivery:
    return Delivery("caf.inbox.336", "336.Assessment.332", b"x", f"m-{n}", {}, 0, n)


class Socket:
    """What each read of the connection brings: a script of arrivals per poll."""

    def __init__(self, arrivals: list[int], buffer: list[Delivery]) -> None:
        self.arrivals = arrivals
        self.buffer = buffer
        self.limits: list[float] = []

    def poll(self, limit: float) -> None:
        self.limits.append(limit)
        count = self.arrivals.pop(0) if self.arrivals else 0
        start = len(self.buffer)
        self.buffer.extend(_delivery(start + i) for i in range(count))


def test_a_lone_delivery_is_handed_over_after_one_read_that_does_not_wait() -> None:
    buffer: list[Delivery] = []
    socket = Socket([1, 0], buffer)
    gather(socket.poll, buffer, Batching(batch_max=100, wait_s=0.25))
    assert len(buffer) == 1
    # One blocking read for the first delivery, then one that takes only what
    # has already arrived: nothing waits for a batch to fill.
    assert socket.limits == [0.25, 0]


def test_what_already_arrived_joins_the_batch_up_to_its_size() -> None:
    buffer: list[Delivery] = []
    socket = Socket([3, 40, 40, 40, 40], buffer)
    gather(socket.poll, buffer, Batching(batch_max=100, wait_s=0.25))
    assert len(buffer) == 123  # reads stop once the batch is full; the rest waits its turn
    assert socket.limits == [0.25, 0, 0, 0]


def test_nothing_arriving_means_a_bounded_wait_and_an_empty_batch() -> None:
    buffer: list[Delivery] = []
    socket = Socket([], buffer)
    gather(socket.poll, buffer, Batching(wait_s=0.25))
    assert buffer == []
    assert socket.limits == [0.25]


def test_a_leftover_batch_is_not_made_to_wait() -> None:
    buffer = [_delivery(n) for n in range(150)]
    socket = Socket([], buffer)
    gather(socket.poll, buffer, Batching(batch_max=100, wait_s=0.25))
    assert socket.limits == [0]


def test_with_nothing_arrived_the_idle_hook_runs_before_the_wait() -> None:
    buffer: list[Delivery] = []
    socket = Socket([], buffer)
    calls: list[int] = []
    gather(socket.poll, buffer, Batching(wait_s=0.25), lambda: calls.append(len(socket.limits)))
    assert calls == [0]  # before the read that waits
    assert socket.limits == [0.25]


def test_deliveries_waiting_are_handed_over_without_calling_the_idle_hook() -> None:
    buffer = [_delivery(0)]
    socket = Socket([1, 0], buffer)
    calls: list[int] = []
    gather(socket.poll, buffer, Batching(wait_s=0.25), lambda: calls.append(1))
    assert len(buffer) == 2
    assert calls == []
    assert socket.limits == [0, 0]


def test_a_wait_returns_at_once_once_its_topic_moved_on() -> None:
    wakeups = Wakeups()
    seen = wakeups.generation("outbox")
    assert not wakeups.wait("outbox", seen, 0)
    wakeups.notify("receipts")
    assert not wakeups.wait("outbox", seen, 0)  # another topic does not wake it
    wakeups.notify("outbox")
    assert wakeups.wait("outbox", seen, 0)


def test_work_recorded_wakes_its_loops_on_commit_and_a_rollback_or_a_read_wakes_none(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, hosted=("332", "336"))
    ledger = gw.ledger
    wakeups = Wakeups()
    unwatch = wakeups.watch(ledger.engine)

    def seen() -> dict[str, int]:
        return {t: wakeups.generation(t) for t in TOPICS}

    before = seen()
    ledger.find(authority="332", direction=Direction.OUTBOUND)
    assert seen() == before
    outbound = signed_inbound(gw, "332", "336", 1)  # the sender's outbox rows
    with ledger.transaction() as conn:
        ledger.record(outbound, conn)
        assert seen() == before  # not before the commit
    assert seen() == {**before, OUTBOX: before[OUTBOX] + 1}
    # The recipient's copy, verified and owed a receipt: the receipt and handover loops.
    received = [
        replace(
            m,
            direction=Direction.INBOUND,
            authority="336",
            statuses=((Status.VERIFIED, None),),
            receipt_due=True,
        )
        for m in signed_inbound(gw, "332", "336", 1)
    ]
    before = seen()
    with ledger.transaction() as conn:
        ledger.record(received, conn)
    assert seen() == {
        OUTBOX: before[OUTBOX],
        RECEIPTS: before[RECEIPTS] + 1,
        HANDOVER: before[HANDOVER] + 1,
    }
    before = seen()
    with pytest.raises(RuntimeError), ledger.transaction() as conn:
        ledger.record(signed_inbound(gw, "332", "336", 1), conn)
        raise RuntimeError("rolled back")
    assert seen() == before
    unwatch()
    with ledger.transaction() as conn:
        ledger.record(signed_inbound(gw, "332", "336", 1), conn)
    assert seen() == before
    ledger.engine.dispose()


def test_a_connection_lost_mid_transaction_rolls_back_with_the_original_error(
    tmp_path: Path,
) -> None:
    # The database going away mid-transaction must surface as itself (an outage the
    # receiving pipeline holds its batch for), not as an error from the wake-up hook.
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    wakeups = Wakeups()
    unwatch = wakeups.watch(engine)
    lost = pytest.raises(ConnectionError, match="server closed the connection")
    with lost, engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        mark(conn, OUTBOX)
        conn.invalidate()  # what SQLAlchemy does when the server is gone
        raise ConnectionError("server closed the connection")
    unwatch()
    engine.dispose()


def test_a_message_travels_and_is_receipted_with_no_loop_polling(tmp_path: Path) -> None:
    # The fallback poll is an hour: only the wakeups can move the message
    # through sender, consumer, receipts and back within the test's timeout.
    gw = memory_gateway(tmp_path, hosted=("332", "336"))
    worker = Worker(gw, gw.transport, fallback_s=3600)
    worker.start()
    try:
        sent = signed_inbound(gw, "332", "336", 3)
        with gw.ledger.transaction() as conn:
            gw.ledger.record(sent, conn)
        ids = {m.message_id for m in sent}
        statuses: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = gw.ledger.find(authority="332", direction=Direction.OUTBOUND)
            statuses = {r.message_id: r.status for r in rows if r.message_id in ids}
            if len(statuses) == 3 and set(statuses.values()) == {Status.DELIVERED}:
                break
            time.sleep(0.05)
        assert set(statuses.values()) == {Status.DELIVERED}, statuses
    finally:
        worker.close()
        gw.ledger.engine.dispose()


def test_a_loop_whose_turn_failed_looks_again_after_its_pause_not_after_the_fallback(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, hosted=("332",))
    worker = Worker(gw, gw.transport, fallback_s=3600)
    turns: list[float] = []
    second = threading.Event()

    def turn() -> int:
        turns.append(time.monotonic())
        if len(turns) == 1:
            raise CafgwError("ledger unavailable: the server is restarting")
        second.set()
        return 0

    loop = threading.Thread(target=worker._loop, args=(Step("sender", turn, None, OUTBOX),))
    loop.start()
    try:
        assert second.wait(20)  # after the 1 s pause, not after the hour
    finally:
        worker.stop.set()
        worker.wakeups.notify(OUTBOX)
        loop.join(10)
        gw.ledger.engine.dispose()
