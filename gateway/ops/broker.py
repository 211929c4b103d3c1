"""A read-only look at the broker: is it reachable, how deep are the queues.

Each call opens a short-lived connection (one attempt, short timeouts) so a
scrape or a readiness check never waits behind the worker's connections and
never hangs on a dead broker. Depths come from a passive ``queue.declare``,
which changes nothing. pika's exceptions are converted here, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pika
import pika.exceptions

from gateway.errors import TransportError
from gateway.settings import Settings
from gateway.transport.rabbit import topology_for

_PIKA_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)
# A passive declare of a queue that does not exist closes the channel with 404.
_NOT_FOUND = 404


class BrokerProbe(Protocol):
    """What operations need to know about the broker."""

    def ping(self) -> None:
        """Return if the broker accepts a connection; TransportError if not."""

    def queue_depths(self) -> Mapping[str, int | None]:
        """Ready messages per watched queue (None: the queue does not exist)."""


@dataclass(frozen=True)
class RabbitProbe:
    """Probe a RabbitMQ broker at ``url`` for the queues named in ``queues``."""

    url: str
    queues: tuple[str, ...]
    timeout_s: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings, timeout_s: float = 3.0) -> RabbitProbe:
        """Watch the inbox and parking queue of every hosted authority."""
        topology = topology_for(settings.broker)
        names: list[str] = []
        for code in settings.hosted:
            names += [topology.inbox(code), topology.parking(code)]
        return cls(settings.broker.url, tuple(names), timeout_s)

    def _connect(self) -> Any:
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.retry_delay = 0
        params.socket_timeout = self.timeout_s
        params.stack_timeout = self.timeout_s
        params.blocked_connection_timeout = self.timeout_s
        params.heartbeat = 0
        try:
            return pika.BlockingConnection(params)
        except _PIKA_ERRORS as exc:
            where = f"{params.host}:{params.port}"
            raise TransportError(
                f"broker at {where} not reachable: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    def ping(self) -> None:
        conn = self._connect()
        _close(conn)

    def queue_depths(self) -> Mapping[str, int | None]:
        conn = self._connect()
        try:
            return _depths(conn, self.queues)
        except _PIKA_ERRORS as exc:
            raise TransportError(f"reading queue depths: {type(exc).__name__} {exc}") from exc
        finally:
            _close(conn)


def _depths(conn: Any, queues: Sequence[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    channel = conn.channel()
    for name in queues:
        try:
            result = channel.queue_declare(name, passive=True)
            found[name] = int(result.method.message_count)
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
    except _PIKA_ERRORS:
        pass  # the broker already closed it; nothing to release
