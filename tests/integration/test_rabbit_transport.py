"""The RabbitMQ transport against the real broker, each test on a vhost of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pika
import pytest
from rabbit_fixtures import (  # noqa: F401 — fixtures are found by name
    Vhost,
    close_connections,
    queue_depths,
    rabbit_url,
    rabbit_vhost,
)

from gateway.errors import BrokerUnavailableError, TransportError
from gateway.settings import BrokerSettings
from gateway.transport.base import (
    Delivery,
    Disposition,
    OutgoingMessage,
    PublishOutcome,
    Verdict,
    parked_key,
    routing_key,
)
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.reconnect import ReconnectPolicy
from gateway.transport.retry import ATTEMPT_HEADER, REASON_HEADER, RetryPolicy, parked_reason
from tests.integration.private_broker import PrivateBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAST_RETRY = RetryPolicy(budget=2, backoff_s=(0.05, 0.1), delivery_limit=2)
INBOX = "caf.inbox.332"


def message(n: int, recipient: str = "332", size: int = 64) -> OutgoingMessage:
    return OutgoingMessage(
        routing_key=routing_key(recipient, "Assessment", "333"),
        body=f"{n:08d}".encode().ljust(size, b"."),
        message_id=f"m-{n}",
        headers={"x-cafgw-sender": "333"},
    )


def declared_transport(url: str) -> Iterator[RabbitTransport]:
    t = RabbitTransport(BrokerSettings(url=url, prefetch=200), retry=FAST_RETRY)
    t.declare(["332"])  # one authority (and the regional queue): quorum queues are slow to create
    yield t
    t.close()


@pytest.fixture
def transport(rabbit_url: str) -> Iterator[RabbitTransport]:  # noqa: F811
    yield from declared_transport(rabbit_url)


@pytest.fixture
def private_transport(private_vhost: str) -> Iterator[RabbitTransport]:
    """A transport on a vhost of the module's private node, which a test may restart."""
    yield from declared_transport(private_vhost)


def consume_until(
    t: RabbitTransport,
    verdict: Callable[[Delivery], Disposition],
    done: Callable[[list[Delivery]], bool],
    queues: Sequence[str] = (INBOX,),
    during: Callable[[list[Delivery]], None] | None = None,
    within_s: float = 30,
) -> list[Delivery]:
    """Consume in a thread, recording every delivery, until ``done`` says so."""
    seen: list[Delivery] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        seen.extend(batch)
        if done(seen):
            stop.set()  # before the verdicts: a verdict may raise
        return [verdict(d) for d in batch]

    def run() -> None:
        try:
            t.consume(queues, handler, stop)
        except BaseException as exc:
            failure.append(exc)
            raise

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + within_s
    while worker.is_alive() and time.monotonic() < deadline:
        if during is not None:
            during(seen)
        worker.join(0.05)
    stop.set()
    worker.join(10)
    assert not failure, failure
    assert done(seen), f"gave up after {within_s} s with {len(seen)} deliveries"
    return seen


def wait_for(check: Callable[[], bool], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def ack(_d: Delivery) -> Disposition:
    return Disposition(Verdict.ACK)


def test_five_thousand_messages_are_confirmed_with_pipelined_confirms_and_all_consumable(
    transport: RabbitTransport,
) -> None:
    messages = [message(n, size=2048) for n in range(5000)]
    started = time.perf_counter()
    results = transport.publish(messages)
    elapsed = time.perf_counter() - started
    print(f"published {len(messages)} x 2 KB with confirms: {len(messages) / elapsed:.0f} msgs/s")
    assert [r.message_id for r in results] == [m.message_id for m in messages]
    assert {r.outcome for r in results} == {PublishOutcome.CONFIRMED}
    seen = consume_until(transport, ack, lambda s: len({d.message_id for d in s}) >= 5000)
    assert {d.message_id for d in seen} == {m.message_id for m in messages}
    assert seen[0].routing_key == "332.Assessment.333"
    assert seen[0].headers["x-cafgw-sender"] == "333"


def test_inbox_states_show_what_waits_who_consumes_and_what_does_not_exist(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(n) for n in range(3)])
    wait_for(lambda: transport.inbox_states(["332"])["332"].waiting == 3)
    stop = threading.Event()
    hold = threading.Event()

    def stall(batch: Sequence[Delivery]) -> list[Disposition]:
        hold.set()
        stop.wait(30)  # a stalled consumer: takes deliveries, settles nothing yet
        return [ack(d) for d in batch]

    consumer = threading.Thread(target=lambda: transport.consume([INBOX], stall, stop))
    consumer.start()
    try:
        assert hold.wait(30)
        states = transport.inbox_states(["332", "999"])
        assert states["332"].exists and states["332"].consumers == 1
        assert states["332"].waiting == 0  # delivered to the stalled consumer, not acked
        assert not states["999"].exists
    finally:
        stop.set()
        consumer.join(30)


def test_inbox_states_count_the_messages_retried_in_the_delay_queues(rabbit_url: str) -> None:  # noqa: F811
    # The recipient's gateway (two delay steps, long enough to look) fails on two
    # messages for a moment; a sender whose policy names more steps than the
    # recipient declared looks: the two are counted, the missing steps hold nothing.
    slow = RetryPolicy(budget=2, backoff_s=(30, 60), delivery_limit=2)
    recipient = RabbitTransport(BrokerSettings(url=rabbit_url), retry=slow)
    sender = RabbitTransport(
        BrokerSettings(url=rabbit_url), retry=RetryPolicy(budget=4, backoff_s=(30, 60, 90, 120))
    )
    try:
        recipient.declare(["332"])
        recipient.publish([message(n) for n in range(2)])
        consume_until(
            recipient, lambda _d: Disposition(Verdict.RETRY, "busy"), lambda s: len(s) >= 2
        )
        wait_for(lambda: sender.inbox_states(["332"])["332"].retrying == 2)
        state = sender.inbox_states(["332", "999"])
        assert (state["332"].waiting, state["332"].retrying) == (0, 2)
        assert not state["999"].exists and state["999"].retrying == 0
    finally:
        recipient.close()
        sender.close()


def test_an_unroutable_message_is_reported_returned(transport: RabbitTransport) -> None:
    results = transport.publish([message(1), message(2, recipient="999"), message(3)])
    assert [r.outcome for r in results] == [
        PublishOutcome.CONFIRMED,
        PublishOutcome.RETURNED,
        PublishOutcome.CONFIRMED,
    ]
    assert "NO_ROUTE" in (results[1].reason or "")


def test_a_publish_to_a_missing_exchange_fails_and_the_next_publish_works(
    transport: RabbitTransport,
) -> None:
    missing = OutgoingMessage("332.Assessment.333", b"x", "m-x", exchange="no.such.exchange")
    assert transport.publish([missing])[0].outcome is PublishOutcome.FAILED
    assert transport.publish([message(1)])[0].outcome is PublishOutcome.CONFIRMED


def test_a_publish_on_the_open_connection_only_never_opens_one_nor_waits_for_one(
    transport: RabbitTransport,
) -> None:
    publisher = transport._publisher
    assert publisher.links_opened == 0  # declaring used a connection of its own
    # Another caller opening the connection (with backoff) holds the lock meanwhile:
    # a caller that must not wait (the consumer's thread) does not take it.
    with publisher._lock:
        (result,) = transport.publish([message(1)], open_only=True)
    assert result.outcome is PublishOutcome.FAILED
    assert "not open" in (result.reason or "")
    assert publisher.links_opened == 0

    assert transport.connect_publisher()
    with publisher._lock:  # open: published on it, and the lock is not needed
        (result,) = transport.publish([message(2)], open_only=True, timeout_s=10)
    assert result.outcome is PublishOutcome.CONFIRMED
    assert publisher.links_opened == 1


def _full_queue_for_777(url: str) -> None:
    """A quorum queue of one message that refuses more: the broker nacks the rest."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.queue_declare(
            "caf.test.full",
            durable=True,
            arguments={"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"},
        )
        channel.queue_bind("caf.test.full", BrokerSettings().exchange, "777.#")
    finally:
        conn.close()


def test_a_nacked_publish_makes_the_next_publish_use_a_new_connection(
    transport: RabbitTransport,
    rabbit_url: str,  # noqa: F811
) -> None:
    _full_queue_for_777(rabbit_url)
    outcomes = []
    for n in range(5):  # a quorum queue applies its limit a little late: it may take two
        opened = transport._publisher.links_opened
        (result,) = transport.publish([message(n, recipient="777")])
        outcomes.append(result.outcome)
        if result.outcome is not PublishOutcome.CONFIRMED:
            break

    assert outcomes[0] is PublishOutcome.CONFIRMED
    assert outcomes[-1] is PublishOutcome.NACKED
    assert transport.publish([message(4)])[0].outcome is PublishOutcome.CONFIRMED
    # A channel that nacked is not trusted again (see AsyncPublisher.retire).
    assert transport._publisher.links_opened == opened + 1


def test_a_publish_started_after_a_nack_uses_a_new_connection_before_the_nack_is_read(
    transport: RabbitTransport,
    rabbit_url: str,  # noqa: F811
) -> None:
    # The sender loop starts its next publish before it reads the last one's results:
    # that publish must not go on the channel that nacked either.
    _full_queue_for_777(rabbit_url)
    # A quorum queue applies its limit a little late: filled first, one at a time.
    for n in range(3):
        transport.publish([message(n, recipient="777")])
    first = transport.start_publish([message(3, recipient="777")])
    wait_for(lambda: first.done)
    opened = transport._publisher.links_opened
    second = transport.start_publish([message(99)])

    assert transport._publisher.links_opened == opened + 1
    assert PublishOutcome.NACKED in {r.outcome for r in first.results()}
    assert [r.outcome for r in second.results()] == [PublishOutcome.CONFIRMED]


def test_escalations_reach_the_authority_and_the_regional_queues(
    transport: RabbitTransport,
) -> None:
    esc = transport.topology.escalation_exchange
    results = transport.publish(
        [
            OutgoingMessage("332.Dispute.333", b"d", "e-1", exchange=esc),
            OutgoingMessage("regional.Dispute.333", b"d", "e-2", exchange=esc),
        ]
    )
    assert {r.outcome for r in results} == {PublishOutcome.CONFIRMED}
    queues = [transport.topology.escalation("332"), transport.topology.escalation("regional")]
    seen = consume_until(transport, ack, lambda s: len(s) >= 2, queues=queues)
    assert sorted((d.queue, d.message_id) for d in seen) == [
        ("caf.escalation.332", "e-1"),
        ("caf.escalation.regional", "e-2"),
    ]


def test_a_retry_goes_through_the_delay_queue_and_comes_back_with_attempt_one(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(1)])
    arrived: list[float] = []

    def verdict(d: Delivery) -> Disposition:
        arrived.append(time.monotonic())
        if ATTEMPT_HEADER in d.headers:
            return Disposition(Verdict.ACK)
        return Disposition(Verdict.RETRY, "ledger busy")

    first, second = consume_until(transport, verdict, lambda s: len(s) >= 2)
    assert ATTEMPT_HEADER not in first.headers
    assert second.headers[ATTEMPT_HEADER] == 1
    assert second.headers[REASON_HEADER] == "ledger busy"
    assert (second.message_id, second.body) == (first.message_id, first.body)
    assert second.routing_key == "332.Assessment.333"
    assert arrived[1] - arrived[0] >= 0.05 * (1 - FAST_RETRY.jitter) - 0.005


def test_a_message_is_parked_with_the_reason_after_the_retry_budget(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(1)])
    seen = consume_until(
        transport, lambda d: Disposition(Verdict.RETRY, "ledger busy"), lambda s: len(s) >= 3
    )
    assert [d.headers.get(ATTEMPT_HEADER) for d in seen] == [None, 1, 2]
    wait_for(lambda: len(transport.peek_parked("332")) == 1)
    (parked,) = transport.peek_parked("332")
    assert parked_reason(parked.headers) == "retry budget of 2 spent: ledger busy"
    assert parked.message_id == "m-1"
    assert parked.routing_key == "332.Assessment.333"


def test_a_park_verdict_parks_at_once_and_peeking_leaves_it_there(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(1), message(2)])
    consume_until(
        transport, lambda d: Disposition(Verdict.PARK, "bad signature"), lambda s: len(s) >= 2
    )
    wait_for(lambda: len(transport.peek_parked("332")) == 2)
    parked = transport.peek_parked("332", limit=10)
    assert [p.message_id for p in parked] == ["m-1", "m-2"]
    assert {parked_reason(p.headers) for p in parked} == {"bad signature"}


def test_a_consumer_that_never_settles_ends_parked_by_the_delivery_limit(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(1)])

    def verdict(d: Delivery) -> Disposition:
        raise RuntimeError("the consumer dies before it settles")

    seen = consume_until(transport, verdict, lambda s: len(s) >= FAST_RETRY.delivery_limit + 1)
    assert [d.delivery_count for d in seen] == [0, 1, 2]
    wait_for(lambda: len(transport.peek_parked("332")) == 1)
    (parked,) = transport.peek_parked("332")
    assert "delivery limit" in parked_reason(parked.headers)
    assert parked.routing_key == "332.Assessment.333"


def test_replay_moves_a_parked_message_back_to_the_inbox_with_attempt_zero(
    transport: RabbitTransport,
) -> None:
    transport.publish([message(1), message(2)])
    consume_until(transport, lambda d: Disposition(Verdict.PARK, "policy"), lambda s: len(s) >= 2)
    wait_for(lambda: len(transport.peek_parked("332")) == 2)
    assert transport.replay_parked("332", "m-2") == 1
    assert [p.message_id for p in transport.peek_parked("332")] == ["m-1"]
    (back,) = consume_until(transport, ack, lambda s: len(s) >= 1)
    assert (back.message_id, back.body) == ("m-2", message(2).body)
    assert back.headers[ATTEMPT_HEADER] == 0
    assert REASON_HEADER not in back.headers
    assert back.routing_key == "332.Assessment.333"
    assert transport.replay_parked("332") == 1


def test_replay_by_digest_moves_one_parked_copy_and_leaves_another_under_its_id(
    transport: RabbitTransport,
) -> None:
    # A message id is whatever its publisher set: two different messages under one.
    first, other = message(1), replace(message(2), message_id="m-1")
    transport.publish([first, other])
    consume_until(transport, lambda d: Disposition(Verdict.PARK, "policy"), lambda s: len(s) >= 2)
    wait_for(lambda: len(transport.peek_parked("332")) == 2)
    found = transport.parked_with("332", "m-1")
    assert sorted(d.body for d in found) == sorted([first.body, other.body])
    assert [p.message_id for p in transport.peek_parked("332")] == ["m-1", "m-1"]  # left
    _, digest = parked_key("m-1", other.body)
    assert transport.replay_parked("332", "m-1", digest) == 1
    assert [p.body for p in transport.peek_parked("332")] == [first.body]
    (back,) = consume_until(transport, ack, lambda s: len(s) >= 1)
    assert (back.message_id, back.body) == ("m-1", other.body)
    assert transport.replay_parked("332", "m-1", "0" * 64) == 0  # no copy has that digest
    assert [p.body for p in transport.peek_parked("332")] == [first.body]


def test_publishing_from_several_threads_at_once_confirms_every_message(
    transport: RabbitTransport,
) -> None:
    results: dict[int, list[PublishOutcome]] = {}

    def publish(k: int) -> None:
        batch = [message(k * 1000 + n) for n in range(500)]
        results[k] = [r.outcome for r in transport.publish(batch)]

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(outcomes == [PublishOutcome.CONFIRMED] * 500 for outcomes in results.values())


def test_consuming_a_queue_that_was_never_declared_says_to_declare_first(
    rabbit_url: str,  # noqa: F811
) -> None:
    t = RabbitTransport(BrokerSettings(url=rabbit_url))
    with pytest.raises(TransportError, match="declare"):
        t.consume(["caf.inbox.404"], lambda batch: [], threading.Event())


def test_a_wrong_port_in_the_broker_url_is_named_not_blamed_on_a_stopped_broker() -> None:
    t = RabbitTransport(
        BrokerSettings(url="amqp://guest:guest@127.0.0.1:1/%2F"),
        reconnect=ReconnectPolicy(attempts=2, initial_s=0.01, max_s=0.02, jitter_s=0.01),
    )
    with pytest.raises(BrokerUnavailableError) as caught:
        t.publish([message(1)])
    text = str(caught.value)
    assert "nothing answers at 127.0.0.1:1" in text and "Connection refused" in text
    assert "check the host and port of broker.url" in text
    assert "rabbitmq-server -detached" not in text


@pytest.mark.serial
def test_the_consumer_reconnects_after_the_broker_closes_its_connections_and_loses_nothing(
    transport: RabbitTransport,
    rabbit_vhost: Vhost,  # noqa: F811
) -> None:
    total = 2000
    assert {r.outcome for r in transport.publish([message(n) for n in range(total)])} == {
        PublishOutcome.CONFIRMED
    }
    closed = threading.Event()

    def slow_ack(_d: Delivery) -> Disposition:
        time.sleep(0.001)  # keep the stream going while the connection is cut
        return Disposition(Verdict.ACK)

    def cut_once(seen: list[Delivery]) -> None:
        if len(seen) >= 300 and not closed.is_set():
            closed.set()
            close_connections(rabbit_vhost.name)

    seen = consume_until(
        transport, slow_ack, lambda s: len({d.message_id for d in s}) >= total, during=cut_once
    )
    assert closed.is_set()
    assert {d.message_id for d in seen} == {f"m-{n}" for n in range(total)}
    # The publisher's connection was closed too; the next call reconnects.
    time.sleep(0.2)
    again = transport.publish([message(total)]) + transport.publish([message(total + 1)])
    assert again[-1].outcome is PublishOutcome.CONFIRMED
    wait_for(lambda: queue_depths(rabbit_vhost.name).get(INBOX, 0) >= 1)


@pytest.mark.serial
@pytest.mark.timeout(180)  # booting the private node is part of it
def test_the_consumer_survives_a_broker_restart_and_loses_nothing(
    private_transport: RabbitTransport, private_broker: PrivateBroker
) -> None:
    transport = private_transport
    total = 200
    transport.publish([message(n) for n in range(total)])
    stopped = threading.Event()

    def stop_broker_once(_d: Delivery) -> Disposition:
        if not stopped.is_set():
            # The broker goes away while this batch is in the handler, so its acks
            # fail; it comes back a second later.
            stopped.set()
            private_broker.stop_app()
            threading.Timer(1.0, private_broker.start_app).start()
        return Disposition(Verdict.ACK)

    seen = consume_until(
        transport,
        stop_broker_once,
        lambda s: len({d.message_id for d in s}) >= total,
        within_s=90,
    )
    private_broker.await_startup()
    assert {d.message_id for d in seen} == {f"m-{n}" for n in range(total)}
    assert len(seen) > total  # the batch in hand during the restart came again


def test_discarding_parked_messages_deletes_only_those_named(transport: RabbitTransport) -> None:
    transport.publish([message(1), message(2), message(3)])
    consume_until(transport, lambda d: Disposition(Verdict.PARK, "policy"), lambda s: len(s) >= 3)
    wait_for(lambda: len(transport.peek_parked("332")) == 3)
    parked = {p.message_id: p.body for p in transport.peek_parked("332")}
    named = [parked_key("m-1", parked["m-1"]), parked_key("m-3", parked["m-3"])]
    # An id with other bytes names another message (another sender's, under the id).
    others = [parked_key("m-2", b"<Envelope>another</Envelope>"), ("m-9", "0" * 64)]
    assert transport.discard_parked("332", [*named, *others]) == 2
    assert [p.message_id for p in transport.peek_parked("332")] == ["m-2"]
