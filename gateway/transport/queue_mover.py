"""Moving every message of one queue to another, losing none.

Each message is taken with basic.get, published to the destination on a
channel in confirm mode, and acknowledged at the source only once the broker
confirmed the copy: a crash between the two leaves the message in both
places (a duplicate, which receivers drop by message id), never in neither.

A copy keeps the body, every property and every header but the broker's
own ``x-delivery-count`` (the new queue counts afresh). Its ``user_id`` and
routing key are necessarily the mover's, so, as for a retry or park copy,
the original's routing key and publisher travel in ``x-cafgw-routing-key``
and ``x-cafgw-publisher``, taken from what the broker vouched for
(``provenance``): headers of ours that a publisher forged are dropped, not
laundered. A copy's per-message expiry (a retry delay) is kept in
``x-cafgw-expiration`` while it is held, so it neither expires nor dead-letters
there, and set again when it is moved back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pika

from gateway.transport import wire
from gateway.transport.provenance import Provenance
from gateway.transport.retry import copy_headers

EXPIRATION_HEADER = "x-cafgw-expiration"  # a held copy's per-message expiry (ms)
BROKER_COUNT = "x-delivery-count"


@dataclass(frozen=True)
class Destination:
    """Where copies go: an exchange and key, on a channel of ``user_id``'s connection."""

    channel: Any  # in confirm mode
    exchange: str
    routing_key: str
    user_id: str | None
    hold: bool  # True: keep expiry in a header; False: set it again


def confirming(conn: Any) -> Any:
    """A channel of ``conn`` whose publishes return only once the broker confirmed them."""
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def move_all(channel: Any, source: str, to: Destination, provenance: Provenance) -> int:
    """Move every message of ``source`` (read on ``channel``) to ``to``; how many moved.

    Runs until the source is empty; raises pika's exceptions (UnroutableError,
    NackError, channel or connection closed) with nothing lost.
    """
    moved = 0
    while True:
        method, properties, body = channel.basic_get(source, auto_ack=False)
        if method is None:
            return moved
        origin = wire.to_delivery(source, method, properties, body, provenance)
        # Confirmed (or UnroutableError/NackError raised) before the ack below runs.
        to.channel.basic_publish(
            to.exchange,
            to.routing_key,
            body,
            copied(properties, origin.headers, origin.routing_key, origin.user_id, to),
            mandatory=True,
        )
        channel.basic_ack(delivery_tag=method.delivery_tag)
        moved += 1


def copied(
    properties: Any,
    headers: Mapping[str, object],
    routing_key: str,
    publisher: str | None,
    to: Destination,
) -> Any:
    """The properties of a copy of a message with ``properties`` for ``to``."""
    # The broker's history stays (x-death says why a parked message was parked).
    out = copy_headers(headers, routing_key, {}, publisher, dropped=frozenset({BROKER_COUNT}))
    expiration = properties.expiration
    if to.hold:
        if expiration is not None:
            out[EXPIRATION_HEADER] = str(expiration)
        expiration = None
    else:
        held = out.pop(EXPIRATION_HEADER, None)
        if held is not None:
            expiration = str(held)
    return pika.BasicProperties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        headers=out,
        delivery_mode=properties.delivery_mode or wire.PERSISTENT,
        priority=properties.priority,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        expiration=expiration,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        type=properties.type,
        user_id=to.user_id,
        app_id=properties.app_id,
        cluster_id=properties.cluster_id,
    )
