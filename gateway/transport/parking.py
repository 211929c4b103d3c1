"""Looking into a parking queue and replaying what is parked there.

Each call runs on a short-lived BlockingConnection that the caller opened
(the admin API calls these from request threads); pika's exceptions pass
through to the caller, which translates them. Peeking takes messages with basic.get
and returns them all unsettled at the end, so the queue is unchanged.
Replay sends a copy back to the inbox through the relay exchange, with
its attempt count reset, and acks the parked message only after the
broker confirmed the copy. The caller's connection is the relay account's
(the only one that may write the relay exchange); the copy carries the
original's routing key and publisher as ``provenance`` read them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.transport import wire
from gateway.transport.base import Delivery, named, parked_key
from gateway.transport.provenance import Provenance
from gateway.transport.retry import ATTEMPT_HEADER, REASON_HEADER, copy_headers
from gateway.transport.topology import Lane, Topology


def _take(channel: Any, queue: str, limit: int, provenance: Provenance) -> list[Delivery]:
    """Up to ``limit`` messages, left unacked (so basic.get cannot repeat one)."""
    taken: list[Delivery] = []
    while len(taken) < limit:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        # A parking queue is a quorum queue: it counts the peeks that gave a message
        # back as deliveries. Those are not processing attempts, so they are not kept.
        delivery = wire.to_delivery(queue, method, properties, body, provenance)
        taken.append(replace(delivery, delivery_count=0))
    return taken


def _give_back(channel: Any, unsettled: list[Delivery]) -> None:
    if unsettled:
        # multiple=True returns every still-unacked message up to this one.
        channel.basic_nack(delivery_tag=unsettled[-1].tag, multiple=True, requeue=True)


def peek(conn: Any, lane: Lane, limit: int, provenance: Provenance) -> list[Delivery]:
    """The first ``limit`` parked messages of ``lane``, left in place."""
    channel = conn.channel()
    taken = _take(channel, lane.parking, limit, provenance)
    _give_back(channel, taken)
    channel.close()
    return taken


def find(conn: Any, lane: Lane, message_id: str, provenance: Provenance) -> list[Delivery]:
    """Every parked message of ``lane`` under ``message_id``, the whole queue looked at
    (as ``replay`` does), left in place."""
    channel = conn.channel()
    depth = int(channel.queue_declare(lane.parking, passive=True).method.message_count)
    taken = _take(channel, lane.parking, depth, provenance)
    _give_back(channel, taken)
    channel.close()
    # A message published with no id is listed, and named, as "?" (``parked_key``).
    return [d for d in taken if (d.message_id or "?") == message_id]


def replay(
    conn: Any,
    topology: Topology,
    lane: Lane,
    message_id: str | None,
    provenance: Provenance,
    user_id: str | None,
    digest: str | None = None,
) -> int:
    """Move parked messages of ``lane`` (all, those with ``message_id``, or the copy with
    its body's ``digest`` too: ``named``) to its queue.

    Returns how many were moved.
    """
    channel = conn.channel()
    channel.confirm_delivery()
    # Take at most what is there now, so that nothing is looked at twice.
    depth = int(channel.queue_declare(lane.parking, passive=True).method.message_count)
    taken = _take(channel, lane.parking, depth, provenance)
    kept: list[Delivery] = []
    for delivery in taken:
        if not named(delivery.message_id, delivery.body, message_id, digest):
            kept.append(delivery)
            continue
        headers = copy_headers(
            delivery.headers, delivery.routing_key, {ATTEMPT_HEADER: 0}, delivery.user_id
        )
        headers.pop(REASON_HEADER, None)
        # Confirmed (or UnroutableError/NackError raised) before the next line runs.
        channel.basic_publish(
            topology.relay_exchange,
            lane.queue,
            delivery.body,
            wire.properties(delivery.message_id, headers, user_id=user_id),
            mandatory=True,
        )
        channel.basic_ack(delivery_tag=delivery.tag)
    _give_back(channel, kept)
    channel.close()
    return len(taken) - len(kept)


def discard(
    conn: Any, lane: Lane, copies: frozenset[tuple[str, str]], provenance: Provenance
) -> int:
    """Ack (delete) the parked messages of ``lane`` named by ``parked_key``; how many went."""
    channel = conn.channel()
    depth = int(channel.queue_declare(lane.parking, passive=True).method.message_count)
    taken = _take(channel, lane.parking, depth, provenance)
    kept: list[Delivery] = []
    for delivery in taken:
        if parked_key(delivery.message_id, delivery.body) in copies:
            channel.basic_ack(delivery_tag=delivery.tag)
        else:
            kept.append(delivery)
    _give_back(channel, kept)
    channel.close()
    return len(taken) - len(kept)
