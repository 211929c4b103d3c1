"""Counting what senders publish, at the broker.

``tap`` binds a queue of the test's own to the main exchange with the same
binding keys as the recipients' inboxes (``<code>.#``), so the broker puts a
copy of every message a sender publishes to them into it. Nobody consumes
it: after the run it holds one copy per publish, whatever the gateways did
with theirs (consumed, redelivered after a kill, retried through the delay
queues: those never pass the main exchange again). ``depth`` is its exact
depth (a passive declare), ``management_depth`` the management API's figure
for it, ``drain`` counts it by message id.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote, unquote, urlsplit

import httpx
import pika
from broker_admin import API, AUTH

TAP = "test.tap.publishes"


def tap(amqp_url: str, exchange: str, codes: tuple[str, ...]) -> str:
    """Declare the tap queue on ``exchange`` for messages to ``codes``; its name."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True, passive=True)
        channel.queue_declare(TAP, durable=True)
        for code in codes:
            channel.queue_bind(TAP, exchange, routing_key=f"{code}.#")
    finally:
        connection.close()
    return TAP


def depth(amqp_url: str, queue: str) -> int:
    """Messages in ``queue`` now, as the broker answers a passive declare (exact)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def management_depth(amqp_url: str, queue: str) -> int | None:
    """Messages in ``queue`` by the management API (a figure it refreshes every few
    seconds, later still on a busy broker); None before its first figure."""
    vhost = quote(unquote(urlsplit(amqp_url).path.lstrip("/")), safe="")
    url = f"{API}/queues/{vhost}/{quote(queue, safe='')}"
    found = httpx.get(url, auth=AUTH, timeout=10.0).json().get("messages")
    return None if found is None else int(found)


def drain(amqp_url: str, queue: str) -> Counter[str]:
    """Every message in ``queue`` taken off it, counted by message id."""
    found: Counter[str] = Counter()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found[str(properties.message_id)] += 1
    finally:
        connection.close()
