"""Publishing with pipelined publisher confirms.

pika's BlockingChannel waits for each confirm in turn; here a
SelectConnection runs in its own IO thread, every message of a batch is
sent at once, and the broker's acks and nacks (``multiple`` included) are
matched back to messages by delivery tag. A mandatory message that no
queue takes comes back as basic.return before its ack and is reported
RETURNED. A connection lost mid-batch leaves the unconfirmed messages
FAILED; the next call reconnects.

All pika calls happen on the IO thread (pika is not thread-safe); callers
hand work over with ``add_callback_threadsafe`` and wait on an event.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pika.exceptions
import pika.spec

from gateway.cpu_budget import BUDGET
from gateway.errors import TransportError
from gateway.transport import wire
from gateway.transport.base import OutgoingMessage, PublishOutcome, PublishResult
from gateway.transport.reconnect import (
    PIKA_ERRORS,
    Nodes,
    ReconnectPolicy,
    describe,
    translate,
    with_reconnect,
)

_CALL_ERRORS: tuple[type[BaseException], ...] = (*PIKA_ERRORS, RuntimeError)
CHUNK = 200  # messages encoded per turn of the IO loop
# After its confirm timeout, how long an ``open_only`` caller waits for the IO
# thread to give its messages up (others: 2 s).
ABANDON_OPEN_ONLY_S = 0.1


class _Batch:
    """The messages of one ``publish`` call and their outcomes so far."""

    def __init__(self, messages: Sequence[OutgoingMessage]) -> None:
        self.messages = messages
        self.results: list[PublishResult | None] = [None] * len(messages)
        self.open = len(messages)
        self.done = threading.Event()
        self._lock = threading.Lock()  # the IO thread and a timed-out caller may both settle

    def settle(self, index: int, outcome: PublishOutcome, reason: str | None = None) -> None:
        with self._lock:
            if self.results[index] is not None:
                return
            self.results[index] = PublishResult(self.messages[index].message_id, outcome, reason)
            self.open -= 1
            if self.open == 0:
                self.done.set()

    def fail_rest(self, reason: str, start: int = 0) -> None:
        """Every message from ``start`` not settled yet: FAILED."""
        for index in range(start, len(self.messages)):
            self.settle(index, PublishOutcome.FAILED, reason)

    def outcomes(self) -> list[PublishResult]:
        return [r for r in self.results if r is not None]


class _Link:
    """One SelectConnection, its confirming channel and its IO thread."""

    def __init__(self, params: Any, default_exchange: str) -> None:
        self.params = params
        self.default_exchange = default_exchange
        # Every message names its publishing account; the broker refuses it if
        # that is not the connection's user, so receivers can rely on it.
        self.user_id = wire.user_of(params)
        self.ready = threading.Event()
        self.closed = False
        self.nacked = False  # the broker nacked on this link: closed, ended once drained
        self.chunks_due = 0  # batches' next chunks scheduled on the IO loop, not yet sent
        self.error: BaseException | None = None
        self.conn: Any = None
        self.channel: Any = None
        self.last_tag = 0
        self.inflight: dict[int, tuple[_Batch, int]] = {}  # delivery tag -> (batch, index)
        self.returned: dict[str, str] = {}  # message id -> why it came back
        self.thread = threading.Thread(target=self._run, name="cafgw-publisher", daemon=True)
        self._cpu_clock: int | None = None
        self._cpu_charged_s = 0.0
        self._cpu_lock = threading.Lock()  # several callers may publish at once

    # -- caller side ---------------------------------------------------------
    def start(self, timeout_s: float) -> None:
        self.thread.start()
        if not self.ready.wait(timeout_s):
            self.call(self.close_soon)
            raise TransportError(f"RabbitMQ at {self.params.host}: no channel within {timeout_s} s")
        if self.channel is None or self.closed:
            if self.error is None:
                raise TransportError(f"RabbitMQ at {self.params.host}: closed while opening")
            raise translate(self.error, self.params) from self.error

    def call(self, fn: Callable[[], None], *, closing: bool = False) -> bool:
        """Run ``fn`` on the IO thread; False if the link is closed (``closing``: run it
        on a link marked closed, to close its connection, as long as its loop runs)."""
        if (self.closed and not closing) or self.conn is None:
            return False
        try:
            self.conn.ioloop.add_callback_threadsafe(fn)
        except _CALL_ERRORS:  # a closed connection, or its IO loop already stopped
            return False
        return True

    def charge_cpu(self) -> None:
        """Charge the IO thread's CPU since the last call to the ``pika`` stage."""
        if self._cpu_clock is None:
            return
        with self._cpu_lock:
            try:
                now = time.clock_gettime(self._cpu_clock)
            except OSError:
                return  # the IO thread has ended
            BUDGET.add("pika", now - self._cpu_charged_s)
            self._cpu_charged_s = now

    # -- IO thread -----------------------------------------------------------
    def _run(self) -> None:
        if BUDGET.enabled:
            # All this thread does is pika's work: its whole CPU is the pika stage.
            self._cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        try:
            self.conn = pika.SelectConnection(
                self.params,
                on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel),
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self.conn.ioloop.start()
        except PIKA_ERRORS as exc:
            self.error = exc
        finally:
            self._fail_inflight("publisher connection ended")
            self.closed = True
            self.ready.set()

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self.ready.set())

    def _on_open_error(self, conn: Any, exc: BaseException) -> None:
        self.error = exc
        conn.ioloop.stop()

    def _on_closed(self, conn: Any, exc: BaseException) -> None:
        self.error = exc
        self._fail_inflight(f"connection lost before confirm ({describe(exc)})")
        self.closed = True
        conn.ioloop.stop()

    def _on_channel_closed(self, _channel: Any, exc: BaseException) -> None:
        # A channel error (e.g. an exchange that does not exist) ends the link;
        # the next publish opens a fresh one.
        self.error = exc
        self.closed = True  # so that the next publish starts a new link at once
        self._fail_inflight(f"channel closed before confirm ({describe(exc)})")
        self.close_soon()

    def close_soon(self) -> None:
        if self.conn is not None and not (self.conn.is_closing or self.conn.is_closed):
            self.conn.close()

    def _fail_inflight(self, reason: str) -> None:
        inflight, self.inflight = self.inflight, {}
        for batch, index in inflight.values():
            batch.settle(index, PublishOutcome.FAILED, reason)

    def send(self, batch: _Batch, start: int = 0) -> None:
        if self.closed or self.channel is None or not self.channel.is_open:
            self.closed = True
            # Only what was not sent: the confirms of what was still come on this
            # channel (a link that nacked stays open until nothing awaits a confirm).
            batch.fail_rest("publisher channel is not open", start)
            self._close_if_drained()
            return
        if batch.done.is_set():
            return  # abandoned after a timeout
        end = min(start + CHUNK, len(batch.messages))
        for index in range(start, end):
            message = batch.messages[index]
            properties = wire.properties(message.message_id, message.headers, user_id=self.user_id)
            try:
                self.channel.basic_publish(
                    message.exchange or self.default_exchange,
                    message.routing_key,
                    message.body,
                    properties,
                    mandatory=True,
                )
            except PIKA_ERRORS as exc:
                batch.fail_rest(f"publish failed ({describe(exc)})")
                return
            self.last_tag += 1
            self.inflight[self.last_tag] = (batch, index)
        if end < len(batch.messages):
            # Yield to the IO loop between chunks, so the broker gets the first
            # messages (and confirms come back) while the rest are still encoded.
            self.chunks_due += 1
            self.conn.ioloop.call_later(0, lambda: self._send_next(batch, end))

    def _send_next(self, batch: _Batch, start: int) -> None:
        self.chunks_due -= 1
        self.send(batch, start)

    def abandon(self, batch: _Batch, reason: str) -> None:
        for tag in [t for t, (b, _) in self.inflight.items() if b is batch]:
            del self.inflight[tag]
        batch.fail_rest(reason)
        self._close_if_drained()

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self.returned[str(properties.message_id)] = (
            f"{method.reply_code} {method.reply_text}: no queue is bound to "
            f"{method.routing_key!r} on exchange {method.exchange!r}"
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        last = int(method.delivery_tag)
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = list(itertools.takewhile(lambda t: t <= last, self.inflight))
        else:
            tags = [last] if last in self.inflight else []
        for tag in tags:
            batch, index = self.inflight.pop(tag)
            returned = self.returned.pop(batch.messages[index].message_id, None)
            if returned is not None:
                batch.settle(index, PublishOutcome.RETURNED, returned)
            elif acked:
                batch.settle(index, PublishOutcome.CONFIRMED)
            else:
                # Not trusted again (AsyncPublisher.retire): from now on, not once the
                # caller reads its results, so no publish started meanwhile goes here
                # (marked before the nack settles: a caller woken by it publishes next).
                self.closed = self.nacked = True
                batch.settle(index, PublishOutcome.NACKED, "the broker nacked the message")
        self._close_if_drained()

    def _close_if_drained(self) -> None:
        """After a nack, close the connection once nothing sent on it awaits a confirm
        and no batch's next chunk is due on it (it fails there: closed before it ran,
        its messages would wait for their confirm timeout); the caller may never read
        the nacked batch's results (a timed-out receipt)."""
        if self.nacked and not self.inflight and not self.chunks_due:
            self.close_soon()


class Pending:
    """A publish started by ``AsyncPublisher.start``, its confirms not yet awaited."""

    def __init__(
        self,
        publisher: AsyncPublisher,
        link: _Link | None,
        batch: _Batch,
        deadline: float,
        timeout_s: float,
        *,
        open_only: bool,
    ) -> None:
        self._publisher = publisher
        self._link = link
        self._batch = batch
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._open_only = open_only
        self._outcomes: list[PublishResult] | None = None

    @property
    def done(self) -> bool:
        """Every message confirmed, refused or failed: ``results()`` would not wait."""
        return self._batch.done.is_set() or not self._batch.messages

    @property
    def overdue(self) -> bool:
        """The confirm timeout has passed: ``results()`` gives the rest up at once."""
        return time.monotonic() >= self._deadline

    def results(self) -> list[PublishResult]:
        """Wait for every confirm, up to the timeout the publish started with; one
        result per message, same order (the same list again on a second call)."""
        if self._outcomes is not None:
            return self._outcomes
        batch, link = self._batch, self._link
        if link is not None and not batch.done.wait(max(0.0, self._deadline - time.monotonic())):
            reason = f"no confirm within {self._timeout_s} s"
            link.call(lambda: link.abandon(batch, reason), closing=True)
            # A caller that must not wait gives the IO thread a moment, not 2 s.
            if not batch.done.wait(ABANDON_OPEN_ONLY_S if self._open_only else 2.0):
                batch.fail_rest(reason)  # the IO thread is gone or stuck
        if BUDGET.enabled and link is not None:
            link.charge_cpu()
        self._outcomes = batch.outcomes()
        if link is not None and any(r.outcome is PublishOutcome.NACKED for r in self._outcomes):
            self._publisher.retire(link)
        return self._outcomes


class AsyncPublisher:
    """Thread-safe publisher; one IO thread, reconnected on the next call after a loss."""

    def __init__(self, params: Any, default_exchange: str, policy: ReconnectPolicy) -> None:
        self._params = Nodes.of(params)  # a cluster's nodes, or one node
        self._default_exchange = default_exchange
        self._policy = policy
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self.links_opened = 0  # connections made (the first and every new one after)

    def connect(self) -> bool:
        """Open the connection unless it is open; True when a new one was opened."""
        opened = self.links_opened
        self._open_link()
        return self.links_opened != opened

    def _open_link(self) -> _Link:
        with self._lock:
            if self._link is None or self._link.closed:
                if self._link is not None:
                    self._params.lost(self._link.params)  # try the other nodes first
                self._link = with_reconnect(self._start_link, self._params, self._policy)
                self.links_opened += 1
            return self._link

    def _start_link(self, params: Any) -> _Link:
        link = _Link(params, self._default_exchange)
        link.start(self._policy.socket_timeout_s + 5)
        return link

    def publish(
        self, messages: Sequence[OutgoingMessage], timeout_s: float, *, open_only: bool = False
    ) -> list[PublishResult]:
        """Publish all, wait for every confirm; one result per message, same order.

        ``open_only``: only on the link open now, without the lock another caller
        holds while it opens one (with backoff): none open, every message FAILED.
        """
        return self.start(messages, timeout_s, open_only=open_only).results()

    def start(
        self, messages: Sequence[OutgoingMessage], timeout_s: float, *, open_only: bool = False
    ) -> Pending:
        """Publish all and return at once; ``results()`` waits for the confirms (at most
        ``timeout_s`` from now). ``open_only``: see ``publish``."""
        batch = _Batch(messages)
        if not messages:
            return Pending(self, None, batch, 0.0, timeout_s, open_only=open_only)
        if open_only:
            link = self._link  # read without the lock: a reconnect may hold it
            if link is None or link.closed:
                batch.fail_rest("publisher connection is not open")
                return Pending(self, None, batch, 0.0, timeout_s, open_only=open_only)
        else:
            link = self._open_link()
        # From the send: opening a connection (with backoff) is not the broker's delay.
        deadline = time.monotonic() + timeout_s
        if not link.call(lambda: link.send(batch)):
            batch.fail_rest("publisher connection is closed")
        return Pending(self, link, batch, deadline, timeout_s, open_only=open_only)

    def retire(self, link: _Link) -> None:
        """End ``link`` after the broker nacked on it: the next publish opens a new one.

        A quorum queue nacks while it has no leader. After its leader's node was
        killed in a three-node cluster, a channel on a surviving node went on
        nacking every publish to that queue for minutes once a new leader had
        been elected (tests/integration/test_broker_cluster.py, two runs in
        three), while a new connection published at once. A nack is rare
        otherwise (a queue over its length limit), so a new connection costs
        little; the unconfirmed messages stay in the outbox for the next turn.

        The link is marked closed as the nack arrives (``_Link._on_confirm``), so
        no publish starts on it from then on, and its connection is closed once
        no confirm is awaited on it (those of other batches in flight come back
        meanwhile), or here, once the caller has read the nacked batch's results,
        whichever comes first.

        Without the lock a reconnect holds, so that no caller waits for one here
        (``open_only``: the consumer's receipts): marking a link closed and
        closing it is idempotent, and harmless on one already replaced.
        """
        link.closed = True  # first: no caller starts a publish on it from now on
        link.call(link.close_soon, closing=True)

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.call(link.close_soon, closing=True)  # a link a nack marked closed too
            link.thread.join(timeout=5)
