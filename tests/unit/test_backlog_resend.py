"""The re-send deadline follows the recipient's visible backlog.

No re-send waves, no false dead letters.

Dudley (332) sends to Wolverhampton (336) on the in-memory transport, with a
clock the test moves: no test here waits for real time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from policy_support import pump, settings_for
from sqlalchemy import update
from support.clock import Clock
from support.sql import captured, plans

from gateway.context import Gateway, build
from gateway.ledger import bodies, dismissed
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.ops import attention
from gateway.services import delivery
from gateway.settings import DeliverySettings
from gateway.transport.base import Delivery, Disposition, InboxState, Verdict
from gateway.transport.memory import MemoryTransport
from gateway.transport.topology import Topology
from tests.local_systems import signed_inbound

DEADLINE_S = 60
BUDGET = 2
INBOX = Topology().inbox("336")


@pytest.fixture
def clock() -> Clock:
    return Clock.starting_now()


@pytest.fixture
def gw(tmp_path: Path, clock: Clock) -> Iterator[Gateway]:
    settings = settings_for(
        tmp_path,
        ("332", "336"),
        delivery={"receipt_deadline_s": DEADLINE_S, "resend_budget": BUDGET},
    )
    transport = MemoryTransport()
    gateway = build(settings, transport, clock=clock)
    transport.declare(gateway.hosted)
    yield gateway
    gateway.ledger.engine.dispose()


def transport_of(gw: Gateway) -> MemoryTransport:
    assert isinstance(gw.transport, MemoryTransport)
    return gw.transport


def send(gw: Gateway, count: int = 1) -> list[str]:
    messages = signed_inbound(gw, "332", "336", count)
    with gw.ledger.transaction() as conn:
        gw.ledger.record(messages, conn)
    assert delivery.publish_outbox(gw).confirmed == count
    return [m.message_id for m in messages]


def record(gw: Gateway, message_id: str) -> MessageRecord:
    (found,) = gw.ledger.find(message_id=message_id, direction=Direction.OUTBOUND)
    return found


def deadlines_pass(gw: Gateway, clock: Clock, times: int) -> None:
    """Let the receipt deadline pass ``times`` times, running the re-send loop each time."""
    for _ in range(times):
        clock.advance(DEADLINE_S + 1)
        delivery.resend_overdue(gw)
        delivery.publish_outbox(gw)


def swallow_inbox(gw: Gateway) -> int:
    """A stalled recipient that takes its inbox and never records or answers it."""
    transport = transport_of(gw)
    taken = transport.depth(INBOX)
    stop = threading.Event()

    def drop(batch: Sequence[Delivery]) -> list[Disposition]:
        if not transport.depth(INBOX):
            stop.set()
        return [Disposition(Verdict.ACK) for _ in batch]

    if taken:
        transport.consume([INBOX], drop, stop)
    return taken


def still_waiting(gw: Gateway, message_id: str, why: str) -> None:
    """``message_id`` still SENT once, not re-sent, and its reason says ``why``."""
    waiting = record(gw, message_id)
    assert (waiting.status, waiting.attempts) == (Status.SENT, 1), waiting.reason
    assert why in (waiting.reason or "")


def test_a_message_waiting_in_the_recipients_inbox_is_never_resent_nor_dead_lettered(
    gw: Gateway, clock: Clock
) -> None:
    (message_id,) = send(gw)
    deadlines_pass(gw, clock, BUDGET + 5)
    waiting = record(gw, message_id)
    assert waiting.status == Status.SENT
    assert waiting.attempts == 1  # waiting is not a send
    assert "its inbox holds 1 message(s) (0 consumer(s))" in (waiting.reason or "")
    assert transport_of(gw).depth(INBOX) == 1  # no copies behind it
    # The recipient comes back: the one copy is delivered and receipted.
    pump(gw)
    assert record(gw, message_id).status == Status.DELIVERED


def test_a_backlog_of_others_messages_defers_without_extra_load(gw: Gateway, clock: Clock) -> None:
    ids = send(gw, 20)
    deadlines_pass(gw, clock, BUDGET + 3)
    rows = [record(gw, m) for m in ids]
    assert {r.status for r in rows} == {Status.SENT}
    assert {r.attempts for r in rows} == {1}
    assert transport_of(gw).depth(INBOX) == 20


def test_an_empty_inbox_means_the_receipt_is_lost_so_it_is_resent_then_dead_lettered(
    gw: Gateway, clock: Clock
) -> None:
    (message_id,) = send(gw)
    sends = 0
    for _ in range(BUDGET + 2):
        sends += swallow_inbox(gw)
        deadlines_pass(gw, clock, 1)
    dead = record(gw, message_id)
    assert dead.status == Status.DEAD_LETTERED
    assert sends == BUDGET + 1
    assert f"after {BUDGET + 1} sends" in (dead.reason or "")


def test_a_send_erased_while_it_waited_for_its_receipt_is_a_dead_letter_nobody_must_act_on(
    gw: Gateway, clock: Clock
) -> None:
    # Erased here (an erasure on request, its retention period) while it waited: its
    # recipient may hold it (so it stays a send never receipted), but a replay would
    # have nothing to send.
    (message_id,) = send(gw)
    for _ in range(BUDGET):
        swallow_inbox(gw)
        deadlines_pass(gw, clock, 1)
    waiting = record(gw, message_id)  # its last send: dead-lettered at the next deadline
    assert (waiting.status, waiting.attempts) == (Status.SENT, BUDGET + 1), waiting.reason
    with gw.ledger.transaction() as conn:
        bodies.erase(conn, [waiting.pk])
    swallow_inbox(gw)
    deadlines_pass(gw, clock, 1)
    assert record(gw, message_id).status == Status.DEAD_LETTERED
    assert attention.counts(gw.ledger, ["332"]) == {}
    (why,) = attention.dismissals_of(gw.ledger, waiting.pk)
    assert why.reason == dismissed.ERASED


def test_a_send_erased_before_its_last_attempt_is_not_sent_again_but_dead_lettered(
    gw: Gateway, clock: Clock
) -> None:
    # Re-queued, the claim withdrew it ("its body was erased here"), as if it had never
    # left: recalls were then refused (found by a review).
    (message_id,) = send(gw)
    waiting = record(gw, message_id)
    with gw.ledger.transaction() as conn:
        bodies.erase(conn, [waiting.pk])
    swallow_inbox(gw)
    deadlines_pass(gw, clock, 1)
    dead = record(gw, message_id)
    assert (dead.status, dead.attempts) == (Status.DEAD_LETTERED, 1), dead.reason
    assert delivery.NOT_RESENT in (dead.reason or "")
    assert attention.counts(gw.ledger, ["332"]) == {}


def test_a_later_message_receipted_first_means_this_one_was_passed(
    gw: Gateway, clock: Clock
) -> None:
    first, later = send(gw, 2)
    send(gw, 5)  # still waiting in the inbox: a backlog
    digest = record(gw, later).digest or ""
    gw.ledger.mark_delivered("332", [(later, digest, Status.DELIVERED, "receipt")], "336")
    clock.advance(DEADLINE_S + 1)
    delivery.resend_overdue(gw)
    again = record(gw, first)
    assert again.status == Status.RETRYING
    assert "336 has receipted later messages" in (again.reason or "")
    # The others are not behind anything receipted: they wait.
    assert sum(1 for r in gw.ledger.find(authority="332") if r.status == Status.SENT) == 5


def resent_once(gw: Gateway, clock: Clock) -> str:
    """A message whose first copy was taken and never receipted, sent again after one
    deadline (the inbox empty then, and nothing later receipted); that copy taken too."""
    (message_id,) = send(gw)
    swallow_inbox(gw)
    deadlines_pass(gw, clock, 1)
    assert record(gw, message_id).attempts == 2
    swallow_inbox(gw)  # its second receipt is lost as well
    return message_id


def one_deadline_later(gw: Gateway, clock: Clock, message_id: str) -> MessageRecord:
    """``message_id`` after its receipt deadline passes once more (re-sent or not)."""
    clock.advance(DEADLINE_S + 1)
    delivery.resend_overdue(gw)
    return record(gw, message_id)


def test_a_copy_sent_again_is_passed_by_a_message_made_after_its_last_send(
    gw: Gateway, clock: Clock
) -> None:
    message_id = resent_once(gw, clock)
    clock.advance(2)  # made after the copy's send was confirmed: went in behind it
    later, *_backlog = send(gw, 4)  # the rest still wait in the inbox
    receipted(gw, later)
    again = one_deadline_later(gw, clock, message_id)
    assert again.status == Status.RETRYING, again.reason
    assert "336 has receipted later messages; re-sending (send 3)" in (again.reason or "")


def receipted(gw: Gateway, message_id: str) -> None:
    digest = record(gw, message_id).digest or ""
    gw.ledger.mark_delivered("332", [(message_id, digest, Status.DELIVERED, "receipt")], "336")


def test_a_message_receipted_that_was_made_before_a_copys_last_send_does_not_pass_it(
    gw: Gateway, clock: Clock
) -> None:
    (first,) = send(gw)
    clock.advance(2)
    (between,) = send(gw)  # after the first send, before the second
    receipted(gw, between)
    swallow_inbox(gw)
    deadlines_pass(gw, clock, 1)  # passed by ``between``: sent again
    assert record(gw, first).attempts == 2
    send(gw, 3)  # a backlog behind the copy, none of it receipted
    deadlines_pass(gw, clock, BUDGET + 2)
    waiting = record(gw, first)
    # ``between`` went into the queue before this copy: it proves nothing about it.
    assert (waiting.status, waiting.attempts) == (Status.SENT, 2), waiting.reason
    assert "its inbox holds 4 message(s)" in (waiting.reason or "")


def test_a_message_made_at_the_moment_of_a_copys_send_does_not_pass_it(
    gw: Gateway, clock: Clock
) -> None:
    message_id = resent_once(gw, clock)
    later, *_backlog = send(gw, 4)  # the same instant as the copy's SENT: not after it
    receipted(gw, later)
    waiting = one_deadline_later(gw, clock, message_id)
    assert (waiting.status, waiting.attempts) == (Status.SENT, 2), waiting.reason


def test_a_message_on_another_queue_does_not_pass_a_copy_in_the_inbox(
    gw: Gateway, clock: Clock
) -> None:
    message_id = resent_once(gw, clock)
    clock.advance(2)
    notice, *_backlog = send(gw, 4)
    with gw.ledger.transaction() as conn:  # as if it went to 336's escalation queue
        conn.execute(
            update(messages).where(messages.c.message_id == notice).values(route="escalation")
        )
    receipted(gw, notice)
    waiting = one_deadline_later(gw, clock, message_id)
    assert (waiting.status, waiting.attempts) == (Status.SENT, 2), waiting.reason


def test_a_passed_copy_whose_budget_is_spent_waits_while_the_inbox_holds_messages(
    gw: Gateway, clock: Clock
) -> None:
    (message_id,) = send(gw)
    for _ in range(BUDGET):  # every send taken, no receipt: sent until the budget is spent
        swallow_inbox(gw)
        deadlines_pass(gw, clock, 1)
    assert record(gw, message_id).attempts == BUDGET + 1
    swallow_inbox(gw)
    clock.advance(2)
    later, *_backlog = send(gw, 4)
    receipted(gw, later)
    deadlines_pass(gw, clock, 2)
    # Passed by the times alone: its last chance is not spent on them while the inbox
    # may hold it (clocks of replicas may disagree).
    waiting = record(gw, message_id)
    assert (waiting.status, waiting.attempts) == (Status.SENT, BUDGET + 1), waiting.reason
    assert "the last allowed; its inbox holds 4 message(s)" in (waiting.reason or "")
    swallow_inbox(gw)  # the inbox empty: the receipt is lost, a true dead letter
    deadlines_pass(gw, clock, 1)
    assert record(gw, message_id).status == Status.DEAD_LETTERED


def test_while_the_broker_cannot_be_asked_nothing_is_resent_or_dead_lettered(
    gw: Gateway, clock: Clock
) -> None:
    (message_id,) = send(gw)
    swallow_inbox(gw)  # not waiting in the inbox: it would be re-sent if the broker answered
    transport_of(gw).available = False
    for _ in range(BUDGET + 3):
        clock.advance(DEADLINE_S + 1)
        delivery.resend_overdue(gw)
    still_waiting(gw, message_id, "broker cannot be asked")


def retrying_at_the_recipient(gw: Gateway, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The recipient's inbox is empty and ``count`` messages wait in its retry delay
    queues (the in-memory broker puts a retry straight back: the look is faked)."""
    swallow_inbox(gw)
    monkeypatch.setattr(
        transport_of(gw),
        "inbox_states",
        lambda codes: {code: InboxState(True, 0, 1, retrying=count) for code in codes},
    )


def test_a_message_that_may_be_retried_at_the_recipient_waits_there_and_is_not_resent(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wolverhampton's gateway failed on it for a moment (or it is a correction that
    # overtook its original): it waits in a delay queue there, out of the inbox, and
    # will be judged again. Re-sending it would only spend the budget, and Dudley's
    # dashboard would say DEAD_LETTERED while Wolverhampton still works on it.
    (message_id,) = send(gw)
    retrying_at_the_recipient(gw, monkeypatch, 1)
    window_s = gw.settings.delivery_for("336").retry_window_s()
    within = int((window_s + DEADLINE_S) // (DEADLINE_S + 1))
    assert within > BUDGET + 1  # longer than the re-send budget alone would wait
    deadlines_pass(gw, clock, within)
    still_waiting(gw, message_id, "its retry queues hold 1 message(s)")
    # Past the recipient's whole retry window it can no longer be there: the receipt
    # was lost, or it was parked. Re-sent; the copy may be retried there in turn, so
    # it is given the window too, and the budget is spent one window a send.
    deadlines_pass(gw, clock, 1)
    assert record(gw, message_id).attempts == 2
    deadlines_pass(gw, clock, within)
    assert record(gw, message_id).attempts == 2
    deadlines_pass(gw, clock, BUDGET * (within + 1))
    dead = record(gw, message_id)
    assert (dead.status, dead.attempts) == (Status.DEAD_LETTERED, BUDGET + 1)


def test_a_later_message_receipted_does_not_resend_one_that_may_be_retried_at_the_recipient(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A retried message leaves the inbox's order: later ones pass it.
    first, later = send(gw, 2)
    digest = record(gw, later).digest or ""
    gw.ledger.mark_delivered("332", [(later, digest, Status.DELIVERED, "receipt")], "336")
    retrying_at_the_recipient(gw, monkeypatch, 1)
    deadlines_pass(gw, clock, 1)
    assert (record(gw, first).status, record(gw, first).attempts) == (Status.SENT, 1)


def test_a_message_kept_in_a_backlog_past_the_retry_window_still_waits_while_retried_after_it(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wolverhampton's gateway was down for longer than its retry window: the message
    # waited in its inbox. Back, it fails on the message for a moment: the retry
    # window runs from when the message could last have been in the inbox, not from
    # when it was made.
    (message_id,) = send(gw)
    window_s = gw.settings.delivery_for("336").retry_window_s()
    deadlines_pass(gw, clock, int(window_s // (DEADLINE_S + 1)) + 5)
    assert "its inbox holds 1 message(s)" in (record(gw, message_id).reason or "")
    retrying_at_the_recipient(gw, monkeypatch, 1)
    deadlines_pass(gw, clock, BUDGET + 3)
    still_waiting(gw, message_id, "its retry queues hold 1 message(s)")


def test_messages_waiting_on_the_retry_queues_are_moved_together_whenever_they_were_made(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first,) = send(gw)
    clock.advance(7)
    (second,) = send(gw)
    retrying_at_the_recipient(gw, monkeypatch, 2)
    deadlines_pass(gw, clock, 1)
    reasons = {record(gw, m).reason for m in (first, second)}
    assert len(reasons) == 1  # one reason, one update for both
    assert "its retry queues hold 2 message(s)" in (reasons.pop() or "")


def test_the_worst_case_includes_waiting_while_a_message_may_be_retried_at_its_recipient() -> None:
    # Six sends, each waiting the 756 s retry window and a 60 s deadline, looked at
    # once every 60 s.
    assert DeliverySettings().worst_case_s() == 6 * (756 + 2 * 60)


def test_a_message_passed_by_a_later_one_is_resent_after_one_window_however_busy_the_inbox(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A later message sent once was receipted: this one has left the inbox, whatever
    # the inbox holds now (another sender's backlog). While the retry queues hold
    # something it may be retried there, for one window; after that its receipt is
    # lost and it is re-sent, not held until it goes stale.
    first, later = send(gw, 2)
    digest = record(gw, later).digest or ""
    gw.ledger.mark_delivered("332", [(later, digest, Status.DELIVERED, "receipt")], "336")
    monkeypatch.setattr(
        transport_of(gw),
        "inbox_states",
        lambda codes: {code: InboxState(True, 40, 1, retrying=1) for code in codes},
    )
    window_s = gw.settings.delivery_for("336").retry_window_s()
    deadlines_pass(gw, clock, int((window_s + DEADLINE_S) // (DEADLINE_S + 1)) + 1)
    again = record(gw, first)
    assert again.attempts == 2, again.reason


def test_retry_queues_the_broker_would_not_count_are_taken_as_holding_this_message(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (message_id,) = send(gw)
    swallow_inbox(gw)
    monkeypatch.setattr(
        transport_of(gw),
        "inbox_states",
        lambda codes: {code: InboxState(True, 0, 1, retrying=None) for code in codes},
    )
    deadlines_pass(gw, clock, BUDGET + 3)
    still_waiting(gw, message_id, "its retry queues could not be counted")
    # Not for ever: past the window it is re-sent, as a message seen there would be.
    window_s = gw.settings.delivery_for("336").retry_window_s()
    deadlines_pass(gw, clock, int((window_s + DEADLINE_S) // (DEADLINE_S + 1)))
    assert record(gw, message_id).attempts == 2


def test_a_broker_that_could_not_be_asked_moves_the_retry_window_on(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nobody could look for longer than the retry window: the message may have sat in
    # the inbox all along, and only then started failing there.
    (message_id,) = send(gw)
    swallow_inbox(gw)
    transport_of(gw).available = False
    window_s = gw.settings.delivery_for("336").retry_window_s()
    for _ in range(int(window_s // (DEADLINE_S + 1)) + 5):
        clock.advance(DEADLINE_S + 1)
        delivery.resend_overdue(gw)
    transport_of(gw).available = True
    retrying_at_the_recipient(gw, monkeypatch, 1)
    deadlines_pass(gw, clock, BUDGET + 3)
    still_waiting(gw, message_id, "its retry queues hold 1 message(s)")


def test_the_worst_case_is_taken_towards_the_recipient_that_retries_longest(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path,
        ("332", "336"),
        authority_delivery={"336": {"retry_backoff_s": [600], "retry_budget": 10}},
    )
    # 332 waits for 336's window (6,000 s) on each of its six sends.
    assert settings.worst_case_s("332") == 6 * (6000 + 2 * 60)
    assert settings.delivery_for("332").worst_case_s() == 6 * (756 + 2 * 60)


def test_the_retry_window_is_every_delay_of_the_retry_budget_in_full() -> None:
    def window(budget: int, backoff: list[float]) -> float:
        return DeliverySettings(retry_budget=budget, retry_backoff_s=backoff).retry_window_s()

    assert window(5, [1, 5, 30, 120, 600]) == 756
    assert window(3, [10]) == 30  # the last step repeats
    assert window(2, [1, 5, 30]) == 6
    assert window(0, [1]) == 0


def test_a_message_older_than_max_age_is_dead_lettered_as_stale(gw: Gateway, clock: Clock) -> None:
    (message_id,) = send(gw)
    clock.advance(gw.settings.limits.max_age_s + 1)
    delivery.resend_overdue(gw)
    dead = record(gw, message_id)
    assert dead.status == Status.DEAD_LETTERED
    assert "refused as stale" in (dead.reason or "")


def test_inbox_states_show_waiting_messages_consumers_and_missing_queues(gw: Gateway) -> None:
    send(gw, 3)
    states = transport_of(gw).inbox_states(["336", "334"])
    assert (states["336"].exists, states["336"].waiting, states["336"].consumers) == (True, 3, 0)
    assert not states["334"].exists


def test_the_pass_check_reads_no_further_back_than_the_oldest_overdue_message(
    gw: Gateway, clock: Clock
) -> None:
    for earlier in send(gw, 5):  # the authority's history, receipted long ago
        receipted(gw, earlier)
    first, later = send(gw, 2)
    send(gw, 3)  # still waiting in the inbox: a backlog
    receipted(gw, later)
    clock.advance(DEADLINE_S + 1)
    with captured(gw.ledger.engine) as statements:
        delivery.resend_overdue(gw)
    again = record(gw, first)
    assert again.status == Status.RETRYING
    assert "336 has receipted later messages" in (again.reason or "")
    (read,) = [
        (sql, params)
        for sql, params in statements
        if "messages.attempts =" in sql and "ORDER BY messages.id DESC" in sql
    ]
    # Bounded by the oldest overdue message's key: the receipted history before it unread.
    assert tuple(read[1])[-3:] == (again.pk, 1, 0)  # id > ?, LIMIT 1 OFFSET 0
    (plan,) = plans(gw.ledger.engine, [read]).values()
    assert "rowid>?" in plan, plan
