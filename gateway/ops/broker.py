"""A read-only look at the broker: is it reachable, how are the queues.

Each call opens a short-lived connection (one attempt, short timeouts) so a
scrape or a readiness check never waits behind the worker's connections and
never hangs on a dead broker. Queue figures come from RabbitMQ's management
HTTP API when it answers (ready, unacknowledged and consumers per queue, as
its UI shows them), else from a passive ``queue.declare``, which changes
nothing and knows ready messages and consumers but not unacknowledged ones.
The AMQP side lives in ``gateway.transport.probe`` (pika's exceptions are
mapped there, with the rest of the transport's); the management API is read
with the standard library's ``urllib``: a gateway scraped by Prometheus every
15 s would otherwise hold httpx, and the Pygments its command line imports
(≈ 7 MB), for one GET.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, unquote, urlparse

from gateway.settings import BrokerTls, Settings
from gateway.transport import probe, tls
from gateway.transport.topology import topology_for


@dataclass(frozen=True)
class QueueStats:
    """One queue as the broker reports it."""

    name: str
    ready: int
    unacknowledged: int | None  # None: not known (passive declare)
    consumers: int | None
    source: str  # "management" (the HTTP API) or "passive" (queue.declare)


class BrokerProbe(Protocol):
    """What operations need to know about the broker."""

    def ping(self) -> None:
        """Return if the broker accepts a connection; TransportError if not."""

    def queue_stats(self) -> Mapping[str, QueueStats | None]:
        """Each watched queue (None: the queue does not exist); TransportError if unreachable."""


def queue_depths(probe: BrokerProbe) -> dict[str, int | None]:
    """Ready messages per watched queue (None: the queue does not exist)."""
    return {name: s.ready if s else None for name, s in probe.queue_stats().items()}


def management_base(amqp_url: str, configured: str | None) -> str | None:
    """The management API's base URL: configured, or the AMQP host on RabbitMQ's
    management port (HTTPS on 15671 for an ``amqps://`` URL, else HTTP on 15672)."""
    if configured is not None:
        return configured.rstrip("/") or None
    parsed = urlparse(amqp_url)
    host = parsed.hostname or "127.0.0.1"
    return f"https://{host}:15671" if parsed.scheme == "amqps" else f"http://{host}:15672"


@dataclass
class RabbitProbe:
    """Probe a RabbitMQ broker at ``url`` for the queues named in ``queues``."""

    url: str
    queues: tuple[str, ...]
    timeout_s: float = 3.0
    management_url: str | None = None
    # After the management API failed, use passive declares for this long.
    retry_management_s: float = 60.0
    tls: BrokerTls | None = None  # AMQPS: the CA and client certificate (broker.tls)
    # A cluster's nodes (``url`` is the first): reachable when any of them answers.
    urls: tuple[str, ...] = ()
    _management_down_until: float = field(default=0.0, repr=False)
    _verify: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.urls or (self.url,)

    @classmethod
    def from_settings(cls, settings: Settings, timeout_s: float = 3.0) -> RabbitProbe:
        """Watch the inbox and parking queue of every hosted authority."""
        topology = topology_for(settings.broker)
        names: list[str] = []
        for code in settings.hosted:
            names += [topology.inbox(code), topology.parking(code)]
        base = management_base(settings.broker.url, settings.broker.management_url)
        return cls(
            settings.broker.url,
            tuple(names),
            timeout_s,
            base,
            tls=settings.broker.tls,
            urls=settings.broker.nodes,
        )

    def ping(self) -> None:
        probe.ping(self.nodes, self.timeout_s, self.tls)

    def queue_stats(self) -> Mapping[str, QueueStats | None]:
        if self.management_url and time.monotonic() >= self._management_down_until:
            try:
                return self._from_management(self.management_url)
            except (OSError, ValueError, KeyError, TypeError):  # urllib's errors are OSErrors
                # Not enabled, not reachable or not allowed: the passive declare still works.
                self._management_down_until = time.monotonic() + self.retry_management_s
        counts = probe.passive_counts(self.nodes, self.queues, self.timeout_s, self.tls)
        return {
            name: None if c is None else QueueStats(name, c.ready, None, c.consumers, "passive")
            for name, c in counts.items()
        }

    def _from_management(self, base: str) -> dict[str, QueueStats | None]:
        parsed = urlparse(self.url)
        vhost = unquote(parsed.path.lstrip("/")) or "/"
        user = unquote(parsed.username or "guest")
        password = unquote(parsed.password or "guest")
        if self.tls is not None and self._verify is None:
            # The broker's CA and our client certificate, as for AMQPS (not the system's CAs).
            self._verify = tls.context(self.tls)
        if urlparse(base).scheme not in ("http", "https"):
            raise ValueError(f"broker.management_url {base!r} is not http(s)")
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
            f"{base}/api/queues/{quote(vhost, safe='')}"
            "?columns=name,messages_ready,messages_unacknowledged,consumers",
            headers={
                "Accept": "application/json",
                "Authorization": "Basic "
                + base64.b64encode(f"{user}:{password}".encode()).decode("ascii"),
            },
        )
        # urlopen raises HTTPError (an OSError) for any answer but 2xx.
        with urllib.request.urlopen(  # noqa: S310 (see above)
            request, timeout=min(self.timeout_s, 2.0), context=self._verify
        ) as answer:
            listed = {q["name"]: q for q in json.loads(answer.read())}
        found: dict[str, QueueStats | None] = {}
        for name in self.queues:
            q = listed.get(name)
            found[name] = (
                None
                if q is None
                else QueueStats(
                    name,
                    int(q.get("messages_ready") or 0),
                    int(q.get("messages_unacknowledged") or 0),
                    int(q.get("consumers") or 0),
                    "management",
                )
            )
        return found
