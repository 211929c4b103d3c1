"""The gateway's background work: consume inboxes, publish the outbox,
send receipts, re-send what got no receipt. Each loop runs in its own
thread (pika connections are per thread) until ``stop`` is set; a loop that
fails logs the error and carries on after a pause, so one bad turn never
stops delivery.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway import features
from gateway.context import Gateway
from gateway.errors import BrokerUnavailableError, CafgwError
from gateway.services import delivery, inbound, receipts
from gateway.transport.base import Delivery, Disposition, Transport, inbox_queue
from gateway.wakeups import Wakeups

log = logging.getLogger(__name__)


@dataclass
class Worker:
    gw: Gateway
    consumer_transport: Transport
    idle_s: float = 0.05
    # Loops woken by Wakeups (sender, receipts) look again after this long even
    # unwoken: for work another process put in a shared ledger.
    fallback_s: float = 0.25
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    wakeups: Wakeups = field(default_factory=Wakeups)
    _unwatch: list[Callable[[], None]] = field(default_factory=list)

    def _handle(self, batch: Sequence[Delivery]) -> Sequence[Disposition]:
        by_queue: dict[str, list[int]] = {}
        for index, d in enumerate(batch):
            by_queue.setdefault(d.queue, []).append(index)
        out: list[Disposition | None] = [None] * len(batch)
        for queue, indexes in by_queue.items():
            authority = queue.rsplit(".", 1)[-1]
            results = inbound.handle_batch(self.gw, authority, [batch[i] for i in indexes])
            for i, r in zip(indexes, results, strict=True):
                out[i] = r
        if any(_routed_type(d) != "Receipt" for d in batch):
            # What was just recorded may be owed a receipt (a receipt never is:
            # waking the receipt loop for each batch of receipts cost the sender
            # a query per batch). The routing key is only a hint here; the
            # fallback look catches a mislabelled one.
            self.wakeups.notify("receipts")
        return [d for d in out if d is not None]

    def _loop(self, name: str, step: Callable[[], int], topic: str | None = None) -> None:
        while not self.stop.is_set():
            seen = self.wakeups.generation(topic) if topic else 0
            try:
                busy = step()
            except BrokerUnavailableError as exc:
                # gateway.transport.link has said the broker is down, once.
                log.debug("%s: %s", name, exc)
                busy = 0
                self.stop.wait(1.0)
            except CafgwError as exc:
                log.warning("%s: %s", name, exc)
                busy = 0
                self.stop.wait(1.0)
            except Exception:
                log.exception("%s failed; carrying on", name)
                busy = 0
                self.stop.wait(1.0)
            if busy:
                continue
            if topic:
                # Asleep until there is work: no fixed wait between a message and its hop.
                self.wakeups.wait(topic, seen, self.fallback_s)
            else:
                self.stop.wait(self.idle_s)

    def _consume(self) -> None:
        queues = [inbox_queue(code) for code in self.gw.hosted]
        while not self.stop.is_set():
            try:
                self.consumer_transport.consume(queues, self._handle, self.stop)
            except BrokerUnavailableError as exc:
                log.debug("consumer: %s; reconnecting", exc)
                self.stop.wait(1.0)
            except CafgwError as exc:
                log.warning("consumer: %s; reconnecting", exc)
                self.stop.wait(1.0)

    def _consume_feature(self, name: str, feature: features.QueueConsumer) -> None:
        queues = feature.queues(self.gw)
        if not queues:
            return
        handler = functools.partial(feature.handle, self.gw)
        while not self.stop.is_set():
            try:
                self.consumer_transport.consume(queues, handler, self.stop)
            except BrokerUnavailableError as exc:
                log.debug("%s: %s; reconnecting", name, exc)
                self.stop.wait(1.0)
            except CafgwError as exc:
                log.warning("%s: %s; reconnecting", name, exc)
                self.stop.wait(1.0)

    def start(self) -> None:
        if self.gw.settings.broker.declare_topology:
            self.gw.transport.declare(self.gw.hosted)
        self._unwatch.append(self.wakeups.watch_outbox(self.gw.ledger.engine))
        loops: list[tuple[str, Callable[[], None]]] = [
            ("consumer", self._consume),
            (
                "sender",
                lambda: self._loop(
                    "sender", lambda: delivery.publish_outbox(self.gw).confirmed, "outbox"
                ),
            ),
            (
                "receipts",
                lambda: self._loop("receipts", lambda: receipts.send_receipts(self.gw), "receipts"),
            ),
            ("resender", lambda: self._loop("resender", self._resend)),
        ]
        features.load()
        for name, job in features.PERIODIC.items():
            step = functools.partial(job, self.gw)
            loops.append((name, functools.partial(self._loop, name, step)))
        for name, feature in features.CONSUMERS.items():
            loops.append((name, functools.partial(self._consume_feature, name, feature)))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"cafgw-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _resend(self) -> int:
        changed = delivery.resend_overdue(self.gw)
        if changed:
            self.wakeups.notify("outbox")  # RETRYING is back in the outbox
        # Receipt deadlines are seconds long: twice a second is plenty, and
        # waiting on the stop event keeps shutdown prompt.
        self.stop.wait(0.5)
        return changed

    def close(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        self.wakeups.notify("outbox", "receipts")  # wake sleeping loops so they see stop
        for thread in self.threads:
            thread.join(timeout_s)
        for unwatch in self._unwatch:
            unwatch()
        self._unwatch.clear()


def _routed_type(delivery: Delivery) -> str:
    """The message type the routing key names (``<recipient>.<type>.<sender>``)."""
    parts = delivery.routing_key.split(".")
    return parts[1] if len(parts) == 3 else ""
