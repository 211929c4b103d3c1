"""The Transport on a real RabbitMQ broker (pika).

A facade over the pieces that each hold one concept: ``topology`` (names
and declarations), ``publisher`` (pipelined confirms), ``consumer``
(batches and settlement), ``parking`` (peek and replay), ``retry``
(message-level policy) and ``reconnect`` (connection-level retry and the
mapping of pika's exceptions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import pika.exceptions

from gateway.errors import TransportError
from gateway.settings import BrokerSettings, Settings
from gateway.transport import parking, wire
from gateway.transport.base import (
    BatchHandler,
    Delivery,
    IdleHook,
    InboxState,
    OutgoingMessage,
    PendingPublish,
    PublishResult,
)
from gateway.transport.consumer import BatchConsumer, Batching
from gateway.transport.provenance import Provenance, provenance_for
from gateway.transport.publisher import AsyncPublisher
from gateway.transport.queue_migration import Accounts, Moved, migrate
from gateway.transport.queue_survey import QueueSurvey, survey
from gateway.transport.reconnect import (
    PIKA_ERRORS,
    Nodes,
    ReconnectPolicy,
    describe,
    nodes,
    open_blocking,
    translate,
    with_reconnect,
)
from gateway.transport.retry import RetryPolicy
from gateway.transport.topology import Plan, Topology, plan, topology_for

T = TypeVar("T")
log = logging.getLogger(__name__)


class RabbitTransport:
    """Transport over RabbitMQ (one node or a cluster): quorum queues for every
    message it holds, broker-side retry, parking."""

    def __init__(
        self,
        broker: BrokerSettings,
        *,
        retry: RetryPolicy | None = None,
        retry_overrides: Mapping[str, RetryPolicy] | None = None,
        topology: Topology | None = None,
        reconnect: ReconnectPolicy | None = None,
        batching: Batching | None = None,
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._overrides = dict(retry_overrides or {})
        self.topology = topology or topology_for(broker)
        self._reconnect = reconnect or ReconnectPolicy()
        self._batching = batching or Batching(
            prefetch=broker.prefetch, batch_max=max(1, broker.prefetch // 2)
        )
        # One node, or every node of a cluster: connections go to any that answers.
        self._params = nodes(broker.nodes, self._reconnect, broker.tls)
        self._replication = broker.replication_factor
        # Retry and park copies and replays are the relay account's (authority
        # accounts may not write those exchanges); None: broker.url's account.
        # On a cluster, the relay account on every node (relay_url's first).
        self._relay_params = (
            None
            if broker.relay_url is None
            else nodes(broker.relay_nodes, self._reconnect, broker.tls)
        )
        self.provenance: Provenance = provenance_for(broker, self.topology)
        self._publisher = AsyncPublisher(self._params, self.topology.exchange, self._reconnect)

    @classmethod
    def from_settings(cls, settings: Settings) -> RabbitTransport:
        """The transport described by the gateway settings (per-authority retry included)."""
        return cls(
            settings.broker,
            retry=RetryPolicy.from_delivery(settings.delivery),
            retry_overrides={
                code: RetryPolicy.from_delivery(d)
                for code, d in settings.delivery_overrides.items()
            },
        )

    def policy_for(self, code: str) -> RetryPolicy:
        return self._overrides.get(code, self._retry)

    def wanted(self, hosted: Sequence[str]) -> Plan:
        """The exchanges, queues (with their arguments) and bindings that ``declare``
        creates for the hosted authorities."""
        return plan(self.topology, hosted, self.policy_for, self._replication)

    def declare(self, hosted: Sequence[str]) -> None:
        """Declare exchanges and the lanes of the hosted authorities (idempotent)."""
        self._admin("declaring the topology", lambda conn: _apply(conn, self.wanted(hosted)))

    @property
    def vhost(self) -> str:
        return str(Nodes.of(self._params).current.virtual_host)

    def survey_queues(self, hosted: Sequence[str]) -> list[QueueSurvey]:
        """How each queue of the hosted authorities' lanes differs from its wanted shape
        (changes nothing; a queue that does not exist is not created)."""
        wanted = self.wanted(hosted).queues
        return self._admin(
            f"surveying the queues of vhost {self.vhost!r}", lambda conn: survey(conn, wanted)
        )

    def migrate_queues(self, hosted: Sequence[str]) -> list[Moved]:
        """Give every queue of the hosted authorities' lanes its wanted shape, moving
        its messages out and back (``queue_migration``); every gateway must be stopped."""
        wanted = self.wanted(hosted)

        def work(conn: Any) -> list[Moved]:
            found = survey(conn, wanted.queues)
            relay = conn
            if self._relay_params is not None:
                relay = with_reconnect(open_blocking, Nodes.of(self._relay_params), self._reconnect)
            accounts = Accounts(
                conn,
                wire.user_of(Nodes.of(self._params).current),
                relay,
                wire.user_of(Nodes.of(self._relay_params or self._params).current),
            )
            try:
                return migrate(
                    accounts,
                    wanted,
                    found,
                    self.provenance,
                    self.topology.relay_exchange,
                    self.vhost,
                )
            finally:
                if relay is not conn and relay.is_open:
                    relay.close()

        return self._admin(f"migrating the queues of vhost {self.vhost!r}", work)

    def connect_publisher(self) -> bool:
        """Open the publisher's connection (another node after a loss) unless open."""
        return self._publisher.connect()

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        """Publish with pipelined confirms; one result per message, same order."""
        return self._publisher.publish(messages, timeout_s, open_only=open_only)

    def start_publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> PendingPublish:
        """``publish``, returning once the messages are sent; the confirms come later."""
        return self._publisher.start(messages, timeout_s, open_only=open_only)

    def consume(
        self,
        queues: Sequence[str],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None = None,
    ) -> None:
        """Deliver batches to ``handler`` until ``stop`` is set, reconnecting after losses."""
        consumer = BatchConsumer(
            self._params,
            self.topology,
            self.policy_for,
            self._reconnect,
            self._batching,
            provenance=self.provenance,
            relay_params=self._relay_params,
        )
        consumer.run(queues, handler, stop, idle)

    def peek_parked(self, code: str, limit: int = 100) -> list[Delivery]:
        """The first ``limit`` messages parked for authority ``code``, left in place."""
        lane = self.topology.lane(self.topology.inbox(code))
        return self._relay(
            f"peeking {lane.parking}", lambda conn: parking.peek(conn, lane, limit, self.provenance)
        )

    def parked_with(self, code: str, message_id: str) -> list[Delivery]:
        """Every message parked for ``code`` under ``message_id``, left in place."""
        lane = self.topology.lane(self.topology.inbox(code))
        return self._relay(
            f"looking through {lane.parking}",
            lambda conn: parking.find(conn, lane, message_id, self.provenance),
        )

    def replay_parked(
        self, code: str, message_id: str | None = None, digest: str | None = None
    ) -> int:
        """Move parked messages of ``code`` (all, one message id, or one copy: the id and
        its body's ``digest``) back to its inbox."""
        lane = self.topology.lane(self.topology.inbox(code))
        relay = wire.user_of(Nodes.of(self._relay_params or self._params).current)
        return self._relay(
            f"replaying {lane.parking}",
            lambda conn: parking.replay(
                conn, self.topology, lane, message_id, self.provenance, relay, digest
            ),
        )

    def discard_parked(self, code: str, copies: Collection[tuple[str, str]]) -> int:
        """Delete the parked messages of ``code`` named by ``parked_key``; how many went."""
        lane = self.topology.lane(self.topology.inbox(code))
        return self._relay(
            f"erasing from {lane.parking}",
            lambda conn: parking.discard(conn, lane, frozenset(copies), self.provenance),
        )

    def inbox_states(self, codes: Sequence[str]) -> dict[str, InboxState]:
        """Each inbox's ready messages and consumers, and the messages in its retry delay
        queues, by passive declares (no permission needed)."""
        return self._admin(
            "looking at inboxes",
            lambda conn: _inbox_states(conn, self.topology, codes, self.policy_for),
        )

    def close(self) -> None:
        self._publisher.close()

    def _relay(self, action: str, work: Callable[[Any], T]) -> T:
        return self._admin(action, work, self._relay_params or self._params)

    def _admin(self, action: str, work: Callable[[Any], T], params: Any = None) -> T:
        target = Nodes.of(self._params if params is None else params)
        conn = with_reconnect(open_blocking, target, self._reconnect)
        try:
            return work(conn)
        except pika.exceptions.ChannelClosedByBroker as exc:
            hint = ""
            if exc.reply_code == 406:
                hint = (
                    "; a queue exists with other arguments (a classic queue of an older "
                    "gateway, or retry steps, delivery limit or broker.replication_factor "
                    "changed?): stop the gateways and run 'cafgw broker migrate-queues' "
                    "(then with --apply), which moves its messages into the new shape; see "
                    "'Moving queues to quorum queues' in docs/delivery.md. Never delete a "
                    "queue that holds messages"
                )
            elif exc.reply_code == 404:
                hint = "; run declare() for the hosted authorities first"
            raise TransportError(f"{action}: {describe(exc)}{hint}") from exc
        except PIKA_ERRORS as exc:
            raise TransportError(f"{action}: {translate(exc, target.current)}") from exc
        finally:
            try:
                if conn.is_open:
                    conn.close()
            except PIKA_ERRORS:
                pass  # already closed by the broker


def _inbox_states(
    conn: Any, topology: Topology, codes: Sequence[str], policy_for: Callable[[str], RetryPolicy]
) -> dict[str, InboxState]:
    out = {}
    looked = _Looker(conn)
    for code in codes:
        inbox = topology.inbox(code)
        found = looked.count(inbox)
        if found is None:
            out[code] = InboxState(False)
            continue
        lane = topology.lane(inbox)
        # The delay queues as this gateway's policy for ``code`` names them: one the
        # recipient's gateway does not have (fewer steps) holds nothing; one the broker
        # will not answer for leaves the count unknown (the inbox's state still stands).
        counts = [
            looked.ready(lane.retry_queue(step)) for step in range(1, policy_for(code).steps + 1)
        ]
        retrying = None if None in counts else sum(c for c in counts if c is not None)
        out[code] = InboxState(True, found[0], found[1], retrying)
    looked.close()
    return out


class _Looker:
    """Passive declares on one channel, opened again after a queue that does not exist."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._channel = conn.channel()

    def count(self, queue: str) -> tuple[int, int] | None:
        """``(ready messages, consumers)`` of ``queue``; None when there is no such queue."""
        try:
            found = self._channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            self._channel = self._conn.channel()  # a refused declare closes the channel
            return None
        return found.method.message_count, found.method.consumer_count

    def ready(self, queue: str) -> int | None:
        """``queue``'s ready messages (0 when it does not exist); None when the broker
        refuses to say, which is logged. A quorum queue without a leader answers 0."""
        try:
            found = self.count(queue)
        except pika.exceptions.ChannelClosedByBroker as exc:
            log.warning("cannot count %s (%s); its recipient's retries unknown", queue, exc)
            self._channel = self._conn.channel()
            return None
        return 0 if found is None else found[0]

    def close(self) -> None:
        self._channel.close()


def _apply(conn: Any, p: Plan) -> None:
    channel = conn.channel()
    for exchange in p.exchanges:
        channel.exchange_declare(exchange.name, exchange_type=exchange.kind, durable=True)
    for queue in p.queues:
        channel.queue_declare(queue.name, durable=True, arguments=dict(queue.arguments) or None)
    for binding in p.bindings:
        channel.queue_bind(binding.queue, binding.exchange, routing_key=binding.key)
    channel.close()
