"""The in-memory transport keeps the contract that services rely on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from gateway.errors import BrokerUnavailableError, TransportError
from gateway.transport.base import (
    Delivery,
    Disposition,
    OutgoingMessage,
    PublishOutcome,
    Transport,
    Verdict,
    routing_key,
)
from gateway.transport.memory import MemoryTransport, topic_matches
from gateway.transport.retry import ATTEMPT_HEADER, RetryPolicy, parked_reason
from gateway.transport.topology import Topology

pytestmark = pytest.mark.timeout(30)

INBOX = Topology().inbox("332")


def message(n: int, recipient: str = "332") -> OutgoingMessage:
    return OutgoingMessage(
        routing_key=routing_key(recipient, "Assessment", "333"),
        body=f"body {n}".encode(),
        message_id=f"m-{n}",
    )


def transport(retry: RetryPolicy | None = None) -> MemoryTransport:
    t = MemoryTransport(retry=retry)
    t.declare(["332", "333"])
    return t


def run_until(
    t: MemoryTransport,
    verdict: Callable[[Delivery], Disposition],
    done: Callable[[list[Delivery]], bool],
    queues: Sequence[str] = (INBOX,),
) -> list[Delivery]:
    """Consume in a thread, recording every delivery, until ``done`` says so."""
    seen: list[Delivery] = []
    stop = threading.Event()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        seen.extend(batch)
        if done(seen):
            stop.set()  # before the verdicts: a verdict may raise
        return [verdict(d) for d in batch]

    worker = threading.Thread(target=t.consume, args=(queues, handler, stop))
    worker.start()
    worker.join(10)
    stop.set()
    worker.join(1)
    assert not worker.is_alive()
    return seen


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("332.#", "332.Assessment.333", True),
        ("332.#", "332", True),
        ("332.*", "332.Assessment.333", False),
        ("*.Dispute.*", "332.Dispute.333", True),
        ("#.333", "332.Assessment.333", True),
        ("332.#", "3321.Assessment.333", False),
        ("regional.#", "332.Dispute.333", False),
    ],
)
def test_topic_patterns_match_like_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_published_messages_are_confirmed_and_land_in_the_recipients_inbox() -> None:
    t = transport()
    results = t.publish([message(1), message(2, recipient="333")])
    assert [r.outcome for r in results] == [PublishOutcome.CONFIRMED] * 2
    assert t.depth(INBOX) == 1
    assert t.depth(Topology().inbox("333")) == 1


def test_a_message_no_queue_is_bound_for_is_returned() -> None:
    results = transport().publish([message(1, recipient="999")])
    assert results[0].outcome is PublishOutcome.RETURNED


def test_escalations_reach_the_authority_and_the_regional_queues() -> None:
    t = transport()
    esc = t.topology.escalation_exchange
    t.publish(
        [
            OutgoingMessage("332.Dispute.333", b"d", "e-1", exchange=esc),
            OutgoingMessage("regional.Dispute.333", b"d", "e-2", exchange=esc),
        ]
    )
    assert t.depth(t.topology.escalation("332")) == 1
    assert t.depth(t.topology.escalation("regional")) == 1
    assert t.depth(INBOX) == 0


def test_acked_messages_leave_the_queue() -> None:
    t = transport()
    t.publish([message(n) for n in range(5)])
    seen = run_until(t, lambda d: Disposition(Verdict.ACK), lambda s: len(s) >= 5)
    assert [d.message_id for d in seen] == [f"m-{n}" for n in range(5)]
    assert seen[0].routing_key == "332.Assessment.333"
    assert t.depth(INBOX) == 0


def test_a_retried_message_comes_back_with_its_attempt_and_reason() -> None:
    t = transport()
    t.publish([message(1)])

    def verdict(d: Delivery) -> Disposition:
        if ATTEMPT_HEADER in d.headers:
            return Disposition(Verdict.ACK)
        return Disposition(Verdict.RETRY, "ledger busy")

    seen = run_until(t, verdict, lambda s: len(s) >= 2)
    assert seen[1].headers[ATTEMPT_HEADER] == 1
    assert seen[1].headers["x-cafgw-reason"] == "ledger busy"
    assert seen[1].message_id == "m-1"
    assert seen[1].routing_key == "332.Assessment.333"


def test_retries_past_the_budget_end_parked_with_the_reason() -> None:
    t = transport(retry=RetryPolicy(budget=2, backoff_s=(1,)))
    t.publish([message(1)])
    seen = run_until(t, lambda d: Disposition(Verdict.RETRY, "ledger busy"), lambda s: len(s) >= 3)
    assert [d.headers.get(ATTEMPT_HEADER) for d in seen] == [None, 1, 2]
    parked = t.peek_parked("332")
    assert len(parked) == 1
    assert parked_reason(parked[0].headers) == "retry budget of 2 spent: ledger busy"
    assert t.depth(INBOX) == 0


def test_a_park_verdict_parks_at_once() -> None:
    t = transport()
    t.publish([message(1)])
    run_until(t, lambda d: Disposition(Verdict.PARK, "bad signature"), lambda s: len(s) >= 1)
    (parked,) = t.peek_parked("332")
    assert parked_reason(parked.headers) == "bad signature"
    assert parked.body == b"body 1"


def test_a_handler_that_always_raises_ends_parked_by_the_delivery_limit() -> None:
    t = transport(retry=RetryPolicy(delivery_limit=2))
    t.publish([message(1)])

    def verdict(d: Delivery) -> Disposition:
        raise RuntimeError("consumer crashed")

    seen = run_until(t, verdict, lambda s: len(s) >= 3)
    assert [d.delivery_count for d in seen] == [0, 1, 2]
    (parked,) = t.peek_parked("332")
    assert "delivery limit" in parked_reason(parked.headers)


def test_replay_moves_a_parked_message_back_with_attempt_zero() -> None:
    t = transport()
    t.publish([message(1), message(2)])
    run_until(t, lambda d: Disposition(Verdict.PARK, "policy"), lambda s: len(s) >= 2)
    assert t.replay_parked("332", "m-2") == 1
    assert [d.message_id for d in t.peek_parked("332")] == ["m-1"]
    (back,) = run_until(t, lambda d: Disposition(Verdict.ACK), lambda s: len(s) >= 1)
    assert back.message_id == "m-2"
    assert back.headers[ATTEMPT_HEADER] == 0
    assert "x-cafgw-reason" not in back.headers


def test_an_unavailable_broker_raises_broker_unavailable() -> None:
    t = transport()
    t.available = False
    with pytest.raises(BrokerUnavailableError):
        t.publish([message(1)])


def test_the_memory_transport_keeps_the_transport_contract() -> None:
    contract: Transport = MemoryTransport()  # checked by mypy
    assert callable(contract.peek_parked)


def test_consuming_an_undeclared_queue_is_refused() -> None:
    with pytest.raises(TransportError):
        MemoryTransport().consume([INBOX], lambda batch: [], threading.Event())
