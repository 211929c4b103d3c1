"""A nack ends the publisher's link at once: what a batch has not sent yet fails
(and stays in the outbox), what it sent keeps its confirms, and the connection is
closed once no confirm is awaited on it. The link's channel, connection and IO loop
are fakes here; the real broker's nack is in tests/integration/test_rabbit_transport.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pika

from gateway.transport.base import OutgoingMessage, PublishOutcome
from gateway.transport.publisher import CHUNK, AsyncPublisher, _Batch, _Link


class Loop:
    def __init__(self) -> None:
        self.later: list[Callable[[], None]] = []

    def call_later(self, _delay: float, fn: Callable[[], None]) -> None:
        self.later.append(fn)

    def add_callback_threadsafe(self, fn: Callable[[], None]) -> None:
        fn()  # as if the IO thread ran it now


class Connection:
    def __init__(self) -> None:
        self.ioloop = Loop()
        self.is_closing = self.is_closed = False

    def close(self) -> None:
        self.is_closing = True


class Channel:
    is_open = True

    def __init__(self) -> None:
        self.published: list[str] = []

    def basic_publish(self, _exchange: str, _key: str, _body: bytes, props: Any, **_: Any) -> None:
        self.published.append(props.message_id)


def _link() -> tuple[_Link, Loop, Channel]:
    link = _Link(pika.ConnectionParameters(), "caf.exchange")
    link.conn, link.channel = Connection(), Channel()
    return link, link.conn.ioloop, link.channel


def _messages(n: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(routing_key="332.Assessment.333", body=b"x", message_id=f"m-{i}")
        for i in range(n)
    ]


def _confirm(link: _Link, method: Any) -> None:
    link._on_confirm(SimpleNamespace(method=method))


def test_a_nack_between_chunks_fails_only_what_the_batch_had_not_sent() -> None:
    link, loop, channel = _link()
    batch = _Batch(_messages(CHUNK + 5))
    link.send(batch)
    assert len(channel.published) == CHUNK and len(loop.later) == 1

    _confirm(link, pika.spec.Basic.Nack(delivery_tag=1))
    assert link.closed  # no publish starts on this link from now on
    loop.later.pop()()  # the batch's next chunk: not sent on a link that nacked

    assert len(channel.published) == CHUNK
    assert batch.results[0] is not None and batch.results[0].outcome is PublishOutcome.NACKED
    assert all(r is None for r in batch.results[1:CHUNK])  # sent: their confirms still come
    assert {r.outcome for r in batch.results[CHUNK:] if r is not None} == {PublishOutcome.FAILED}
    assert all(r is not None for r in batch.results[CHUNK:])

    assert not link.conn.is_closing  # confirms still awaited on it
    _confirm(link, pika.spec.Basic.Ack(delivery_tag=CHUNK, multiple=True))
    assert batch.done.is_set()
    assert link.conn.is_closing  # nothing left to wait for: ended, whoever reads the results
    confirmed = [r.outcome for r in batch.outcomes()[1:CHUNK]]
    assert confirmed == [PublishOutcome.CONFIRMED] * (CHUNK - 1)


def test_a_link_that_nacked_stays_open_while_a_batchs_next_chunk_is_due_on_it() -> None:
    link, loop, _channel = _link()
    batch = _Batch(_messages(CHUNK + 5))
    link.send(batch)
    _confirm(link, pika.spec.Basic.Nack(delivery_tag=1))
    _confirm(link, pika.spec.Basic.Ack(delivery_tag=CHUNK, multiple=True))
    # Every sent message settled, but the next chunk is still to run: closed now, its
    # messages would be left to their confirm timeout.
    assert not link.conn.is_closing
    loop.later.pop()()
    assert batch.done.is_set()
    assert {r.outcome for r in batch.outcomes()[CHUNK:]} == {PublishOutcome.FAILED}
    assert link.conn.is_closing


def test_a_link_that_nacked_closes_once_a_given_up_batchs_next_chunk_has_run() -> None:
    link, loop, _channel = _link()
    batch = _Batch(_messages(CHUNK + 5))
    link.send(batch)
    _confirm(link, pika.spec.Basic.Nack(delivery_tag=1))
    link.abandon(batch, "no confirm within 5 s")
    assert not link.conn.is_closing  # its next chunk is still due
    loop.later.pop()()
    assert link.conn.is_closing


def test_a_link_that_nacked_is_closed_once_a_timed_out_batch_is_given_up() -> None:
    # A receipt's publish that timed out may never have its results read: the link
    # that nacked is closed all the same once nothing on it awaits a confirm.
    link, _loop, _channel = _link()
    nacked, waiting = _Batch(_messages(1)), _Batch(_messages(2))
    link.send(nacked)
    link.send(waiting)
    _confirm(link, pika.spec.Basic.Nack(delivery_tag=1))
    assert link.closed and not link.conn.is_closing
    link.abandon(waiting, "no confirm within 5 s")
    assert link.conn.is_closing
    assert {r.outcome for r in waiting.outcomes()} == {PublishOutcome.FAILED}


def test_closing_the_publisher_closes_a_link_a_nack_marked_closed() -> None:
    link, _loop, _channel = _link()
    link.send(_Batch(_messages(2)))
    _confirm(link, pika.spec.Basic.Nack(delivery_tag=1))  # the other still awaited
    assert link.closed and not link.conn.is_closing
    link.thread = threading.Thread(target=lambda: None)
    link.thread.start()
    publisher = AsyncPublisher.__new__(AsyncPublisher)
    publisher._lock, publisher._link = threading.Lock(), link
    publisher.close()
    assert link.conn.is_closing
