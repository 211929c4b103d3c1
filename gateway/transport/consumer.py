"""Consuming lanes in batches and settling each delivery by its verdict.

Runs in the calling thread on its own BlockingConnection (pika is not
thread-safe). Batches adapt to the load, with no fixed wait: the consumer
blocks until something arrives, then takes whatever else has already
arrived (a non-blocking read) and hands the batch over at once. While the
handler works, further deliveries pile up in the prefetch window, so the
next batch is as large as the backlog (up to ``batch_max``): one message at
a trickle, full batches under load. The handler's dispositions then decide:

- ACK: acked (one ``multiple`` ack for the whole batch where possible);
- RETRY: a copy goes to the lane's delay queue for the next attempt, or to
  parking once the budget is spent;
- PARK: a copy goes to parking with the reason.

Copies are published as the relay account (``broker.relay_url``, on a
connection of its own; without one, on the consuming channel): authority
accounts may not write the retry and parking exchanges. A copy carries the
routing key and publisher of the original (``provenance``) in its headers.

A handler that raises OutageError (the ledger's database is restarting)
gets the same batch again after a backoff, for as long as the outage lasts:
held unacked, the messages are neither lost nor counted as failed attempts.

A copy is published with a confirm on this channel *before* the original
is acked, so a crash between the two duplicates and never loses. A handler
that raises gets the whole batch nacked with requeue: the quorum queue
counts the delivery and parks the message at its delivery limit.

With nothing to hand over, the consumer calls its idle hook (if given)
before it waits (the receiving pipeline settles its receipts whose confirms
have come in: ``receiving.ReceiptsInFlight``).

The handler must return within about twice the heartbeat (60 s by default);
pika does not answer heartbeats while it runs.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika.exceptions

from gateway.cpu_budget import BUDGET
from gateway.errors import BrokerUnavailableError, OutageError, TransportError
from gateway.transport import wire
from gateway.transport.base import BatchHandler, Delivery, Disposition, IdleHook, Verdict
from gateway.transport.provenance import Provenance
from gateway.transport.reconnect import (
    PIKA_ERRORS,
    Nodes,
    ReconnectPolicy,
    describe,
    open_blocking,
    open_first,
    with_reconnect,
)
from gateway.transport.retry import RetryPolicy, copy_for
from gateway.transport.topology import Lane, Topology

log = logging.getLogger(__name__)

# Channel errors that mean the topology is wrong, not that the broker hiccuped.
PERMANENT_REPLY_CODES = frozenset({403, 404, 406})
ACCESS_REFUSED = 403


@dataclass(frozen=True)
class Batching:
    """How deliveries are grouped for the handler."""

    prefetch: int = 200
    batch_max: int = 100
    # Longest a blocking wait for deliveries lasts before the loop looks at
    # ``stop`` again; a delivery ends the wait at once, so it adds no latency.
    wait_s: float = 0.25


class BatchConsumer:
    """Consume ``queues`` until ``stop`` is set, reconnecting after connection loss
    (to any live node of a cluster)."""

    def __init__(
        self,
        params: Nodes,
        topology: Topology,
        policy_for: Callable[[str], RetryPolicy],
        reconnect: ReconnectPolicy,
        batching: Batching,
        *,
        provenance: Provenance,
        relay_params: Any | None = None,
    ) -> None:
        self._params = params
        self._provenance = provenance
        self._relay_params = relay_params
        self._relay_user = wire.user_of(
            params.current if relay_params is None else Nodes.of(relay_params).current
        )
        self._topology = topology
        self._policy_for = policy_for
        self._reconnect = reconnect
        self._batching = batching
        self._rng = random.Random()  # noqa: S311 — jitter, not secrets
        self._stop = threading.Event()

    def run(
        self,
        queues: Sequence[str],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None = None,
    ) -> None:
        self._stop = stop
        lanes = {q: self._topology.lane(q) for q in queues}
        connected_once = False
        while not stop.is_set():
            try:
                node, conn = with_reconnect(
                    functools.partial(_connect, idle),
                    self._params,
                    self._reconnect,
                    stop=stop,
                    forever=connected_once,  # after a loss, keep trying until stopped
                )
            except BrokerUnavailableError:
                if stop.is_set():
                    return
                raise
            connected_once = True
            try:
                self._session(conn, lanes, handler, stop, idle)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code in PERMANENT_REPLY_CODES:
                    raise TransportError(
                        f"consuming {list(lanes)}: {describe(exc)}; run declare() first"
                    ) from exc
                log.warning("consumer channel closed (%s); reconnecting", describe(exc))
                self._params.lost(node)
            except PIKA_ERRORS as exc:
                log.warning("consumer lost its connection (%s); reconnecting", describe(exc))
                self._params.lost(node)  # a cluster's other nodes are tried first
            finally:
                _close_quietly(conn)

    def _session(
        self,
        conn: Any,
        lanes: Mapping[str, Lane],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None,
    ) -> None:
        b = self._batching
        channel = conn.channel()
        channel.basic_qos(prefetch_count=b.prefetch)
        channel.confirm_delivery()  # retry and park copies are confirmed before the ack
        relay_conn = None
        relay = channel
        if self._relay_params is not None:
            relay_conn = open_first(self._relay_params)
            relay = relay_conn.channel()
            relay.confirm_delivery()
        try:
            self._consume(conn, channel, relay, relay_conn, lanes, handler, stop, idle)
        finally:
            if relay_conn is not None:
                _close_quietly(relay_conn)

    def _consume(
        self,
        conn: Any,
        channel: Any,
        relay: Any,
        relay_conn: Any,
        lanes: Mapping[str, Lane],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None,
    ) -> None:
        b = self._batching
        buffer: list[Delivery] = []
        tags = [
            channel.basic_consume(
                queue, functools.partial(_collect, buffer, queue, self._provenance)
            )
            for queue in lanes
        ]
        while not stop.is_set():
            with BUDGET.timed("pika"):
                gather(lambda limit: conn.process_data_events(time_limit=limit), buffer, b, idle)
                if relay_conn is not None:
                    relay_conn.process_data_events(time_limit=0)  # its heartbeats
            if buffer:
                self._settle(channel, relay, lanes, buffer[: b.batch_max], handler)
                del buffer[: b.batch_max]
        # Stopping: no more deliveries (pika nacks the undispatched ones), settle the rest.
        for tag in tags:
            channel.basic_cancel(tag)
        while buffer:
            self._settle(channel, relay, lanes, buffer[: b.batch_max], handler)
            del buffer[: b.batch_max]
        channel.close()

    def _settle(
        self,
        channel: Any,
        relay: Any,
        lanes: Mapping[str, Lane],
        batch: list[Delivery],
        handler: BatchHandler,
    ) -> None:
        try:
            dispositions = self._handled(channel, batch, handler)
            if dispositions is None:
                # Stopped while the batch was held: it goes back to the queue as it was.
                channel.basic_nack(delivery_tag=batch[-1].tag, multiple=True, requeue=True)
                return
            if len(dispositions) != len(batch):
                raise TransportError(
                    f"handler returned {len(dispositions)} dispositions for {len(batch)} deliveries"
                )
        except Exception:
            # Why catch everything: a handler bug must not stop the consumer. The
            # quorum queue counts these returns and parks at the delivery limit.
            log.exception("handler failed; %d deliveries returned to the queue", len(batch))
            channel.basic_nack(delivery_tag=batch[-1].tag, multiple=True, requeue=True)
            return
        unsettled: set[int] = set()
        for delivery, disposition in zip(batch, dispositions, strict=True):
            if disposition.verdict is not Verdict.ACK and not self._copy(
                relay, lanes[delivery.queue], delivery, disposition
            ):
                unsettled.add(delivery.tag)
        if not unsettled:
            # Every earlier delivery is settled, so this acks exactly the batch.
            with BUDGET.timed("pika"):
                channel.basic_ack(delivery_tag=batch[-1].tag, multiple=True)
            return
        for delivery in batch:
            if delivery.tag in unsettled:
                channel.basic_nack(delivery_tag=delivery.tag, requeue=True)
            else:
                channel.basic_ack(delivery_tag=delivery.tag)

    def _handled(
        self, channel: Any, batch: list[Delivery], handler: BatchHandler
    ) -> list[Disposition] | None:
        """The handler's dispositions, holding the batch unsettled through an outage.

        A handler that raises OutageError (the ledger does not answer) has nothing
        against these messages: they stay delivered and unacked, the connection keeps
        its heartbeats while the consumer waits (the reconnect backoff), and the same
        batch is handed over again until it goes through. None: stopped meanwhile.
        """
        attempt = 0
        held_since = 0.0
        while True:
            try:
                found = list(handler(batch))
            except OutageError as exc:
                attempt += 1
                if attempt == 1:
                    held_since = time.monotonic()
                    log.warning(
                        "holding %d deliveries unacknowledged until it is back: %s",
                        len(batch),
                        exc,
                    )
                wait = self._reconnect.backoff.wait_s(attempt)
                if self._stop.is_set():
                    return None
                channel.connection.sleep(wait)  # answers heartbeats meanwhile
                continue
            if attempt:
                log.warning(
                    "%d held deliveries handed over after %.1f s",
                    len(batch),
                    time.monotonic() - held_since,
                )
            return found

    def _copy(self, relay: Any, lane: Lane, delivery: Delivery, disposition: Disposition) -> bool:
        """Publish the retry or park copy as the relay; True once the broker confirmed it."""
        policy = self._policy_for(lane.code)
        copy = copy_for(
            policy,
            disposition,
            delivery.headers,
            delivery.routing_key,
            lane.queue,
            delivery.user_id,
        )
        # On the relay exchange, keyed by the target queue's own name.
        exchange = self._topology.relay_exchange
        if copy.park:
            key, expiration = lane.parking, None
        else:
            key = lane.retry_queue(copy.step)
            expiration = policy.jittered_ms(copy.step, self._rng)
        try:
            # The channel is in confirm mode: this returns once the broker confirmed.
            relay.basic_publish(
                exchange,
                key,
                delivery.body,
                wire.properties(
                    delivery.message_id,
                    copy.headers,
                    expiration,
                    user_id=self._relay_user,
                ),
                mandatory=True,
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == ACCESS_REFUSED:
                raise TransportError(
                    f"copying {delivery.message_id} to {key} on {exchange}: {describe(exc)}; "
                    "only a relay account of this lane may write retry and parking copies: set "
                    "broker.relay_url to it (cafgw broker setup makes it)"
                ) from exc
            raise
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            log.error(
                "copy of %s to %s not confirmed (%s)", delivery.message_id, key, describe(exc)
            )
            return False
        return True


def gather(
    poll: Callable[[float], None],
    buffer: list[Delivery],
    batching: Batching,
    idle: IdleHook | None = None,
) -> None:
    """Fill ``buffer`` for the next batch, never waiting once there is something to hand over.

    ``poll(limit)`` reads the connection, blocking up to ``limit`` seconds for
    the first delivery (0: only what has already arrived). It blocks only
    while ``buffer`` is empty; then it takes what is already there until a
    read brings nothing new or the batch is full. ``idle`` is called before a
    wait, never when something waits to be handed over.
    """
    if not buffer and idle is not None:
        idle()
    poll(0 if buffer else batching.wait_s)
    while buffer and len(buffer) < batching.batch_max:
        before = len(buffer)
        poll(0)
        if len(buffer) == before:
            return


def _connect(idle: IdleHook | None, params: Any) -> tuple[Any, Any]:
    """A connection to ``params``; first, while it has none, the consumer's idle hook."""
    if idle is not None:
        idle()
    return params, open_blocking(params)


def _collect(
    buffer: list[Delivery],
    queue: str,
    provenance: Provenance,
    _ch: Any,
    method: Any,
    props: Any,
    body: bytes,
) -> None:
    buffer.append(wire.to_delivery(queue, method, props, body, provenance))


def _close_quietly(conn: Any) -> None:
    try:
        if conn.is_open:
            conn.close()
    except PIKA_ERRORS:
        pass  # already gone; the broker requeues whatever was unacked
