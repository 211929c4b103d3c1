"""Is the broker reachable? Said once when it goes, once when it comes back.

Every connection attempt of this process (publisher, consumers) reports
here; an outage is one WARNING line naming the address and the cause, and
its end one more with how long it lasted, however many threads retried in
between. (pika's own loggers are silenced in ``logging_setup``: its errors
reach us as exceptions and are reported here instead.)

``unreachable`` words the error for a broker that does not answer: only
when the URL points at the local default broker is the advice to start
RabbitMQ; otherwise the address itself is the likely mistake.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("gateway.transport.link")

DEFAULT_PORT = 5672
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
START_HINT = "start it with: rabbitmq-server -detached"


class LinkState:
    """Outages per broker address, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: dict[str, tuple[float, str]] = {}

    def failed(self, where: str, cause: str) -> None:
        """A connection attempt to ``where`` failed (logged only if it was up)."""
        with self._lock:
            if where in self._down_since:
                return
            self._down_since[where] = (time.monotonic(), cause)
        log.warning(
            "RabbitMQ at %s is unreachable (%s); reconnecting with backoff "
            "(further failures are not logged until it answers again)",
            where,
            cause,
            extra={"broker": where, "broker_state": "down"},
        )

    def succeeded(self, where: str) -> None:
        """A connection to ``where`` opened (logged only if it was down)."""
        with self._lock:
            found = self._down_since.pop(where, None)
        if found is not None:
            log.warning(
                "RabbitMQ at %s answers again after %.0f s",
                where,
                time.monotonic() - found[0],
                extra={"broker": where, "broker_state": "up"},
            )

    def is_down(self, where: str) -> bool:
        with self._lock:
            return where in self._down_since


# One per process: every transport of the process shares the same broker's fate.
LINK = LinkState()


def unreachable(host: str, port: int, cause: str) -> str:
    """Why nothing answers at ``host:port``, and what to do about it."""
    if host in LOCAL_HOSTS and port == DEFAULT_PORT:
        return f"RabbitMQ is not answering at {host}:{port} ({cause}); {START_HINT}"
    return (
        f"nothing answers at {host}:{port}, the address in the broker URL ({cause}); "
        f"check the host and port of broker.url in config/gateway.yaml or CAFGW_BROKER__URL "
        f"(RabbitMQ listens on {DEFAULT_PORT} unless configured otherwise)"
    )
