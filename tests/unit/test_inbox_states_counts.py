"""What the re-send check reads of a recipient's queues, the broker's refusals included.

``rabbit._inbox_states`` over a stand-in for pika's connection whose passive
declares answer as the test says: a count, no such queue (404, which closes the
channel), or a refusal the broker gives for another reason (also closing it).
The real broker's counts are ``tests/integration/test_rabbit_transport.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pika.exceptions

from gateway.transport.rabbit import _inbox_states
from gateway.transport.retry import RetryPolicy
from gateway.transport.topology import Topology

MISSING, REFUSED = "missing", "refused"
POLICY = RetryPolicy(budget=2, backoff_s=(30, 60))


class Broker:
    """Answers passive declares from ``queues``: (ready, consumers), MISSING or REFUSED."""

    def __init__(self, queues: dict[str, tuple[int, int] | str]) -> None:
        self.queues = queues
        self.channels = 0

    def channel(self) -> Channel:
        self.channels += 1
        return Channel(self)


class Channel:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.open = True

    def queue_declare(self, queue: str, passive: bool) -> SimpleNamespace:
        assert passive and self.open, "a passive declare on an open channel"
        answer = self.broker.queues.get(queue, MISSING)
        if isinstance(answer, str):
            self.open = False  # a refused declare closes the channel
            code = 404 if answer == MISSING else 541
            raise pika.exceptions.ChannelClosedByBroker(code, f"{answer} {queue}")
        ready, consumers = answer
        counts = SimpleNamespace(message_count=ready, consumer_count=consumers)
        return SimpleNamespace(method=counts)

    def close(self) -> None:
        self.open = False


def test_the_retry_queues_are_counted_and_one_the_recipient_lacks_holds_nothing() -> None:
    broker = Broker({"caf.inbox.336": (0, 1), "caf.retry.336.1": (2, 0)})  # step 2 missing
    state = _inbox_states(broker, Topology(), ["336"], lambda _code: POLICY)["336"]
    assert (state.exists, state.waiting, state.consumers, state.retrying) == (True, 0, 1, 2)


def test_a_retry_queue_the_broker_will_not_count_leaves_the_count_unknown_not_empty() -> None:
    # Taken as empty, a message held there would be re-sent and, the budget spent,
    # dead-lettered while the recipient still retried it.
    broker = Broker(
        {
            "caf.inbox.336": (4, 1),
            "caf.retry.336.1": REFUSED,
            "caf.retry.336.2": (1, 0),
            "caf.inbox.333": (0, 1),
            "caf.retry.333.1": (0, 0),
            "caf.retry.333.2": (3, 0),
        }
    )
    states = _inbox_states(broker, Topology(), ["336", "333", "999"], lambda _code: POLICY)
    assert (states["336"].waiting, states["336"].retrying) == (4, None)
    assert states["333"].retrying == 3  # the look went on, on a new channel
    assert not states["999"].exists
    assert broker.channels == 3  # one, and one after each closing refusal
