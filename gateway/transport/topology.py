"""Names and shape of the broker topology, as plain data.

``Topology`` names every exchange and queue (prefix ``caf`` by default, so
that tests may isolate themselves with another one); ``plan`` lists what
``declare`` must create for a set of hosted authorities. The RabbitMQ
transport applies the plan with pika; the in-memory transport applies the
same plan, so both route alike.

A *lane* is a queue that consumers read (an inbox or an escalation queue)
together with its retry delay queues and its parking queue::

    caf.exchange --<code>.#--> caf.inbox.<code> --(delivery limit)--> caf.parking
    caf.relay --caf.retry.<code>.<n>--> caf.retry.<code>.<n> --(TTL)--> caf.requeue
    caf.requeue --caf.inbox.<code>--> caf.inbox.<code>
    caf.parking --caf.parking.<code>--> caf.parking.<code>
    caf.relay --caf.parking.<code>--> caf.parking.<code>
    caf.relay --caf.inbox.<code>--> caf.inbox.<code>     (a replay)

``caf.parking`` and ``caf.requeue`` are written only by the broker itself
(dead-lettering). Copies (retry, park) and replays are published by a relay
account on ``caf.relay``, a topic exchange whose every binding key is a
queue's own name: topic permissions can then pin a relay account to its
authority's lanes (``accounts.grants_for``), which a direct exchange cannot.

Every queue holds messages the gateway owes, so every one is a quorum queue
(replicated by Raft across a cluster's nodes, ``replicas`` of them when
``broker.replication_factor`` is set): the inbox and escalation queues, their
retry delay queues and their parking queues. Delay queues dead-letter
at-least-once, so a message whose delay ends while a node is down is not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.errors import ConfigError, TransportError
from gateway.settings import BrokerSettings
from gateway.transport.retry import RetryPolicy

REGIONAL = "regional"


@dataclass(frozen=True)
class Lane:
    """A consumed queue with the retry and parking queues that serve it."""

    queue: str
    code: str  # the authority whose retry policy applies ("regional" for the group)
    parking: str
    retry_base: str

    def retry_queue(self, step: int) -> str:
        return f"{self.retry_base}.{step}"


@dataclass(frozen=True)
class Topology:
    """Every exchange and queue name, derived from one prefix."""

    prefix: str = "caf"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.exchange"

    @property
    def escalation_exchange(self) -> str:
        return f"{self.prefix}.escalation"

    @property
    def relay_exchange(self) -> str:
        """Where relay accounts publish copies and replays (a topic exchange)."""
        return f"{self.prefix}.relay"

    @property
    def requeue_exchange(self) -> str:
        return f"{self.prefix}.requeue"

    @property
    def parking_exchange(self) -> str:
        return f"{self.prefix}.parking"

    def inbox(self, code: str) -> str:
        return f"{self.prefix}.inbox.{code}"

    def parking(self, code: str) -> str:
        return f"{self.prefix}.parking.{code}"

    def escalation(self, code: str) -> str:
        return f"{self.prefix}.escalation.{code}"

    def consumed(self, queue: str) -> tuple[str, str]:
        """``(kind, owner)`` of a consumed queue: ``("inbox", code)`` or
        ``("escalation", code-or-regional)``; TransportError for other names."""
        for kind in ("inbox", "escalation"):
            head = f"{self.prefix}.{kind}."
            if queue.startswith(head) and len(queue) > len(head):
                return kind, queue[len(head) :]
        raise TransportError(
            f"queue {queue!r} is neither an inbox nor an escalation queue of prefix {self.prefix!r}"
        )

    def lane(self, queue: str) -> Lane:
        """The lane of an inbox or escalation queue; TransportError for other names."""
        for kind, tag in (
            (f"{self.prefix}.inbox.", ""),
            (f"{self.prefix}.escalation.", "escalation."),
        ):
            if queue.startswith(kind) and len(queue) > len(kind):
                code = queue[len(kind) :]
                suffix = tag + code
                return Lane(
                    queue=queue,
                    code=code,
                    parking=f"{self.prefix}.parking.{suffix}",
                    retry_base=f"{self.prefix}.retry.{suffix}",
                )
        raise TransportError(
            f"queue {queue!r} is neither an inbox nor an escalation queue of prefix "
            f"{self.prefix!r}; consume only {self.inbox('<code>')} or {self.escalation('<code>')}"
        )


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    kind: str  # "topic" or "direct"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: Mapping[str, object]


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    queue: str
    key: str


@dataclass(frozen=True)
class Plan:
    """What ``declare`` creates, in order: exchanges, queues, bindings."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


def plan(
    topology: Topology,
    hosted: Sequence[str],
    policy_for: Callable[[str], RetryPolicy],
    replicas: int | None = None,
) -> Plan:
    """The topology needed to host ``hosted`` authorities (and the regional group).

    ``replicas``: each queue's quorum group size (None: RabbitMQ's default)."""
    quorum = _quorum(replicas)
    t = topology
    exchanges = (
        ExchangeSpec(t.exchange, "topic"),
        ExchangeSpec(t.escalation_exchange, "topic"),
        ExchangeSpec(t.relay_exchange, "topic"),
        ExchangeSpec(t.requeue_exchange, "direct"),
        ExchangeSpec(t.parking_exchange, "direct"),
    )
    entries = [(t.inbox(c), t.exchange, f"{c}.#") for c in hosted]
    entries += [(t.escalation(c), t.escalation_exchange, f"{c}.#") for c in hosted]
    entries.append((t.escalation(REGIONAL), t.escalation_exchange, f"{REGIONAL}.#"))
    queues: list[QueueSpec] = []
    bindings: list[BindingSpec] = []
    for name, exchange, key in dict.fromkeys(entries):
        lane = t.lane(name)
        policy = policy_for(lane.code)
        queues.append(QueueSpec(name, {**quorum, **_lane_arguments(t, lane, policy)}))
        bindings.append(BindingSpec(exchange, name, key))
        bindings.append(BindingSpec(t.requeue_exchange, name, name))
        bindings.append(BindingSpec(t.relay_exchange, name, name))
        queues.append(QueueSpec(lane.parking, quorum))
        bindings.append(BindingSpec(t.parking_exchange, lane.parking, lane.parking))
        bindings.append(BindingSpec(t.relay_exchange, lane.parking, lane.parking))
        for step in range(1, policy.steps + 1):
            retry = lane.retry_queue(step)
            queues.append(
                QueueSpec(
                    retry,
                    {
                        **quorum,
                        "x-message-ttl": max(1, int(policy.delay_s(step) * 1000)),
                        "x-dead-letter-exchange": t.requeue_exchange,
                        "x-dead-letter-routing-key": name,
                        **AT_LEAST_ONCE,
                    },
                )
            )
            bindings.append(BindingSpec(t.relay_exchange, retry, retry))
    return Plan(exchanges, tuple(queues), tuple(bindings))


# At-least-once dead-lettering (which needs reject-publish overflow) keeps a
# dead-lettered message until the queue it goes to has confirmed it.
AT_LEAST_ONCE: Mapping[str, object] = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def _quorum(replicas: int | None) -> dict[str, object]:
    found: dict[str, object] = {"x-queue-type": "quorum"}
    if replicas is not None:
        found["x-quorum-initial-group-size"] = replicas
    return found


def _lane_arguments(t: Topology, lane: Lane, policy: RetryPolicy) -> dict[str, object]:
    # Quorum queues count every unsettled delivery themselves, so a consumer
    # that dies each time still ends parked.
    return {
        "x-delivery-limit": policy.delivery_limit,
        "x-dead-letter-exchange": t.parking_exchange,
        "x-dead-letter-routing-key": lane.parking,
        **AT_LEAST_ONCE,
    }


def topology_for(broker: BrokerSettings) -> Topology:
    """The topology whose exchange names are the ones in the broker settings."""
    prefix = broker.exchange.removesuffix(".exchange")
    topology = Topology(prefix)
    if (topology.exchange, topology.escalation_exchange) != (
        broker.exchange,
        broker.escalation_exchange,
    ):
        raise ConfigError(
            f"broker.exchange {broker.exchange!r} and broker.escalation_exchange "
            f"{broker.escalation_exchange!r} must share a prefix: "
            "'<prefix>.exchange' and '<prefix>.escalation'"
        )
    return topology
