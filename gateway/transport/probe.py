"""Short, read-only looks at the broker over AMQP: can we connect, how full are these queues.

One attempt with short timeouts and no heartbeat, so a scrape or a readiness
check never waits behind the worker's connections and never hangs on a dead
broker. pika's exceptions become ``TransportError`` here, through
``reconnect.translate`` like every other broker call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from gateway.errors import TransportError
from gateway.settings import BrokerTls
from gateway.transport.reconnect import PIKA_ERRORS, ReconnectPolicy, describe, parameters, where

# A passive declare of a queue that does not exist closes the channel with 404.
_NOT_FOUND = 404


@dataclass(frozen=True)
class PassiveCount:
    """What a passive ``queue.declare`` tells: ready messages and consumers."""

    ready: int
    consumers: int


def _connect(url: str, timeout_s: float, tls: BrokerTls | None) -> Any:
    params = parameters(url, ReconnectPolicy(heartbeat_s=0, socket_timeout_s=timeout_s), tls)
    params.retry_delay = 0
    params.stack_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    try:
        return pika.BlockingConnection(params)
    except PIKA_ERRORS as exc:
        raise TransportError(f"broker at {where(params)} not reachable: {describe(exc)}") from exc


def _any(urls: str | Sequence[str], timeout_s: float, tls: BrokerTls | None) -> Any:
    """A connection to the first of ``urls`` (a cluster's nodes) that accepts one."""
    failures: list[str] = []
    for url in [urls] if isinstance(urls, str) else urls:
        try:
            return _connect(url, timeout_s, tls)
        except TransportError as exc:
            failures.append(str(exc))
    if len(failures) == 1:
        raise TransportError(failures[0])
    raise TransportError(f"no node of the cluster answers: {'; '.join(failures)}")


def ping(urls: str | Sequence[str], timeout_s: float, tls: BrokerTls | None = None) -> None:
    """Return if the broker (any of a cluster's ``urls``) accepts a connection;
    TransportError if not."""
    _close(_any(urls, timeout_s, tls))


def passive_counts(
    urls: str | Sequence[str], queues: Sequence[str], timeout_s: float, tls: BrokerTls | None = None
) -> dict[str, PassiveCount | None]:
    """Each queue's counts (None: the queue does not exist); changes nothing."""
    conn = _any(urls, timeout_s, tls)
    try:
        return passive_on(conn, queues)
    except PIKA_ERRORS as exc:
        raise TransportError(f"reading queue depths: {describe(exc)}") from exc
    finally:
        _close(conn)


def passive_on(conn: Any, queues: Sequence[str]) -> dict[str, PassiveCount | None]:
    """Each queue's counts on the open connection ``conn`` (None: no such queue)."""
    found: dict[str, PassiveCount | None] = {}
    channel = conn.channel()
    for name in queues:
        try:
            result = channel.queue_declare(name, passive=True)
            found[name] = PassiveCount(
                int(result.method.message_count), int(result.method.consumer_count)
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _NOT_FOUND:
                raise
            found[name] = None
            channel = conn.channel()
    if channel.is_open:
        channel.close()
    return found


def _close(conn: Any) -> None:
    try:
        if conn.is_open:
            conn.close()
    except PIKA_ERRORS:
        pass  # the broker already closed it; nothing to release
