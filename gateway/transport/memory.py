"""An in-process Transport for unit tests: same contract, no broker.

It applies the same topology plan as RabbitMQ (topic and direct exchanges,
``*`` and ``#`` patterns, lanes with parking) and takes the same retry
decisions (``retry.RetryPolicy``), but a retried message is back in its
queue at once instead of after the backoff delay. Unroutable messages are
RETURNED; a handler that raises gets its batch returned and counted, and
a message past the delivery limit is parked, like a quorum queue does.
Thread-safe: one lock guards all state.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gateway.errors import BrokerUnavailableError, TransportError
from gateway.transport.base import (
    BatchHandler,
    Delivery,
    Disposition,
    IdleHook,
    InboxState,
    OutgoingMessage,
    PendingPublish,
    PublishOutcome,
    PublishResult,
    Settled,
    Verdict,
    named,
    parked_key,
)
from gateway.transport.retry import (
    ATTEMPT_HEADER,
    REASON_HEADER,
    RetryPolicy,
    copy_for,
    copy_headers,
)
from gateway.transport.topology import BindingSpec, Lane, Topology, plan


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""

    def match(p: Sequence[str], k: Sequence[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] in ("*", k[0])) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class _Stored:
    body: bytes
    message_id: str | None
    routing_key: str
    headers: dict[str, object] = field(default_factory=dict)
    returns: int = 0  # unsettled deliveries, as a quorum queue counts them
    user_id: str | None = None  # the publishing account, kept through copies


class MemoryTransport:
    """Transport held in memory; ``available = False`` simulates a broker that is down."""

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        retry_overrides: Mapping[str, RetryPolicy] | None = None,
        topology: Topology | None = None,
        batch_max: int = 100,
        account: str = "guest",
    ) -> None:
        self.topology = topology or Topology()
        # The account every publish names as user_id (RabbitMQ's default user).
        self.account = account
        self.available = True
        self._retry = retry or RetryPolicy()
        self._overrides = dict(retry_overrides or {})
        self._batch_max = batch_max
        self._cond = threading.Condition()
        self._exchanges: dict[str, str] = {}
        self._bindings: list[BindingSpec] = []
        self._queues: dict[str, deque[_Stored]] = {}
        self._consumers: dict[str, int] = {}
        self._tags = itertools.count(1)

    def policy_for(self, code: str) -> RetryPolicy:
        return self._overrides.get(code, self._retry)

    def declare(self, hosted: Sequence[str]) -> None:
        """Declare exchanges and the lanes of the hosted authorities (idempotent)."""
        p = plan(self.topology, hosted, self.policy_for)
        with self._cond:
            self._exchanges.update({e.name: e.kind for e in p.exchanges})
            for q in p.queues:
                self._queues.setdefault(q.name, deque())
            for b in p.bindings:
                if b not in self._bindings:
                    self._bindings.append(b)

    def connect_publisher(self) -> bool:
        """Nothing to open; ``BrokerUnavailableError`` while ``available`` is False."""
        self._check_available()
        return False

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        """Route each message; RETURNED when no queue is bound for it. While
        ``available`` is False: ``BrokerUnavailableError``, or with ``open_only``
        every message FAILED (no connection is open)."""
        if open_only and not self.available:
            closed = "publisher connection is not open"
            return [PublishResult(m.message_id, PublishOutcome.FAILED, closed) for m in messages]
        self._check_available()
        results = []
        with self._cond:
            for m in messages:
                exchange = m.exchange or self.topology.exchange
                if exchange not in self._exchanges:
                    results.append(
                        PublishResult(
                            m.message_id, PublishOutcome.FAILED, f"no exchange {exchange!r}"
                        )
                    )
                    continue
                targets = self._route(exchange, m.routing_key)
                for queue in targets:
                    self._queues[queue].append(
                        _Stored(
                            m.body,
                            m.message_id,
                            m.routing_key,
                            dict(m.headers),
                            user_id=self.account,
                        )
                    )
                outcome = PublishOutcome.CONFIRMED if targets else PublishOutcome.RETURNED
                reason = None if targets else f"no queue is bound to {m.routing_key!r}"
                results.append(PublishResult(m.message_id, outcome, reason))
            self._cond.notify_all()
        return results

    def start_publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> PendingPublish:
        """``publish``, whose outcomes are known at once here (through ``publish``, so
        that a test's fake overriding it fakes both)."""
        return Settled(tuple(self.publish(messages, timeout_s, open_only=open_only)))

    def consume(
        self,
        queues: Sequence[str],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None = None,
    ) -> None:
        """Deliver batches to ``handler`` until ``stop`` is set; settle by its verdicts."""
        self._check_available()
        lanes = {q: self.topology.lane(q) for q in queues}
        with self._cond:
            for q in lanes:
                self._consumers[q] = self._consumers.get(q, 0) + 1
        try:
            self._consume(lanes, handler, stop, idle)
        finally:
            with self._cond:
                for q in lanes:
                    self._consumers[q] -= 1

    def _consume(
        self,
        lanes: Mapping[str, Lane],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None,
    ) -> None:
        while not stop.is_set():
            taken = self._take(list(lanes), stop, idle)
            if not taken:
                continue
            batch = [self._delivery(queue, stored) for queue, stored in taken]
            try:
                dispositions = list(handler(batch))
                if len(dispositions) != len(batch):
                    raise TransportError("handler returned a disposition count unlike the batch")
            except Exception:
                # Why catch everything: as with RabbitMQ, a failing handler gets its
                # batch returned and counted, never a dead consumer.
                self._return(taken, lanes)
                continue
            with self._cond:
                for (queue, stored), disposition in zip(taken, dispositions, strict=True):
                    self._settle(lanes[queue], stored, disposition)
                self._cond.notify_all()

    def peek_parked(self, code: str, limit: int = 100) -> list[Delivery]:
        """The first ``limit`` messages parked for authority ``code``, left in place."""
        parking = self.topology.lane(self.topology.inbox(code)).parking
        with self._cond:
            return [self._delivery(parking, s) for s in list(self._queues[parking])[:limit]]

    def parked_with(self, code: str, message_id: str) -> list[Delivery]:
        """Every message parked for ``code`` under ``message_id``, left in place."""
        parking = self.topology.lane(self.topology.inbox(code)).parking
        with self._cond:
            return [
                self._delivery(parking, s)
                for s in self._queues[parking]
                if (s.message_id or "?") == message_id  # as ``parked_key`` names it
            ]

    def replay_parked(
        self, code: str, message_id: str | None = None, digest: str | None = None
    ) -> int:
        """Move parked messages of ``code`` (all, one message id, or one copy: the id and
        its body's ``digest``) back to its inbox."""
        lane = self.topology.lane(self.topology.inbox(code))
        with self._cond:
            parked = self._queues[lane.parking]
            moving = [s for s in parked if named(s.message_id, s.body, message_id, digest)]
            for stored in moving:
                parked.remove(stored)
                headers = copy_headers(
                    stored.headers, stored.routing_key, {ATTEMPT_HEADER: 0}, stored.user_id
                )
                headers.pop(REASON_HEADER, None)
                self._queues[lane.queue].append(replace(stored, headers=headers, returns=0))
            self._cond.notify_all()
        return len(moving)

    def discard_parked(self, code: str, copies: Collection[tuple[str, str]]) -> int:
        """Delete the parked messages of ``code`` named by ``parked_key``; how many went."""
        wanted = set(copies)
        parking = self.topology.lane(self.topology.inbox(code)).parking
        with self._cond:
            parked = self._queues[parking]
            going = [s for s in parked if parked_key(s.message_id, s.body) in wanted]
            for stored in going:
                parked.remove(stored)
        return len(going)

    def inbox_states(self, codes: Sequence[str]) -> dict[str, InboxState]:
        """Messages waiting in each authority's inbox and its consumers."""
        self._check_available()
        out = {}
        with self._cond:
            for code in codes:
                queue = self.topology.inbox(code)
                waiting = self._queues.get(queue)
                out[code] = (
                    InboxState(False)
                    if waiting is None
                    else InboxState(True, len(waiting), self._consumers.get(queue, 0))
                )
        return out

    def depth(self, queue: str) -> int:
        """How many messages wait in ``queue`` (for tests)."""
        with self._cond:
            return len(self._queues.get(queue, ()))

    def close(self) -> None:
        """Nothing to release; present for the contract."""

    # -- internals (called with the lock held unless said otherwise) ---------
    def _check_available(self) -> None:
        if not self.available:
            raise BrokerUnavailableError("memory transport: broker marked unavailable")

    def _route(self, exchange: str, key: str) -> list[str]:
        direct = self._exchanges[exchange] == "direct"
        return list(
            dict.fromkeys(
                b.queue
                for b in self._bindings
                if b.exchange == exchange
                and (b.key == key if direct else topic_matches(b.key, key))
            )
        )

    def _take(
        self, queues: list[str], stop: threading.Event, idle: IdleHook | None = None
    ) -> list[tuple[str, _Stored]]:
        """Up to batch_max messages from ``queues``; with none, calls ``idle`` and
        waits briefly."""
        taken = self._take_now(queues)
        if taken or stop.is_set():
            return taken
        if idle is not None:
            idle()  # outside the lock: it may publish
        with self._cond:
            taken = self._take_now(queues)
            if not taken and not stop.is_set():
                self._cond.wait(0.02)
            return taken

    def _take_now(self, queues: list[str]) -> list[tuple[str, _Stored]]:
        with self._cond:
            taken: list[tuple[str, _Stored]] = []
            for queue in queues:
                waiting = self._queues.get(queue)
                if waiting is None:
                    raise TransportError(f"queue {queue!r} not declared; run declare() first")
                while waiting and len(taken) < self._batch_max:
                    taken.append((queue, waiting.popleft()))
            return taken

    def _delivery(self, queue: str, stored: _Stored) -> Delivery:
        headers = dict(stored.headers)
        if stored.returns:
            headers["x-delivery-count"] = stored.returns
        return Delivery(
            queue=queue,
            routing_key=stored.routing_key,
            body=stored.body,
            message_id=stored.message_id,
            headers=headers,
            delivery_count=stored.returns,
            tag=next(self._tags),
            user_id=stored.user_id,
        )

    def _return(self, taken: list[tuple[str, _Stored]], lanes: Mapping[str, Lane]) -> None:
        with self._cond:
            for queue, stored in reversed(taken):
                stored.returns += 1
                lane = lanes[queue]
                if stored.returns > self.policy_for(lane.code).delivery_limit:
                    headers = dict(stored.headers)
                    headers["x-first-death-reason"] = "delivery_limit"
                    self._queues[lane.parking].append(replace(stored, headers=headers))
                else:
                    self._queues[queue].appendleft(stored)
            self._cond.notify_all()

    def _settle(self, lane: Lane, stored: _Stored, disposition: Disposition) -> None:
        if disposition.verdict is Verdict.ACK:
            return
        policy = self.policy_for(lane.code)
        copy = copy_for(
            policy, disposition, stored.headers, stored.routing_key, lane.queue, stored.user_id
        )
        # A retry goes straight back, without its delay: unit tests should not wait.
        target = lane.parking if copy.park else lane.queue
        self._queues[target].append(replace(stored, headers=copy.headers, returns=0))
