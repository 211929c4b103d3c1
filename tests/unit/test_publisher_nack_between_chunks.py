"""A nack ends the publisher's link at once: what a batch has not sent yet fails
(and stays in the outbox), what it sent keeps its confirms. The link's channel and
IO loop are fakes here; the real broker's nack is in
tests/integration/test_rabbit_transport.py."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pika

from gateway.transport.base import OutgoingMessage, PublishOutcome
from gateway.transport.publisher import CHUNK, _Batch, _Link


class Loop:
    def __init__(self) -> None:
        self.later: list[Callable[[], None]] = []

    def call_later(self, _delay: float, fn: Callable[[], None]) -> None:
        self.later.append(fn)


class Channel:
    is_open = True

    def __init__(self) -> None:
        self.published: list[str] = []

    def basic_publish(self, _exchange: str, _key: str, _body: bytes, props: Any, **_: Any) -> None:
        self.published.append(props.message_id)


def _link() -> tuple[_Link, Loop, Channel]:
    link = _Link(pika.ConnectionParameters(), "caf.exchange")
    loop, channel = Loop(), Channel()
    link.conn = SimpleNamespace(ioloop=loop, is_closing=False, is_closed=False)
    link.channel = channel
    return link, loop, channel


def _confirm(link: _Link, method: Any) -> None:
    link._on_confirm(SimpleNamespace(method=method))


def test_a_nack_between_chunks_fails_only_what_the_batch_had_not_sent() -> None:
    link, loop, channel = _link()
    messages = [
        OutgoingMessage(routing_key="332.Assessment.333", body=b"x", message_id=f"m-{n}")
        for n in range(CHUNK + 5)
    ]
    batch = _Batch(messages)
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

    _confirm(link, pika.spec.Basic.Ack(delivery_tag=CHUNK, multiple=True))
    assert batch.done.is_set()
    confirmed = [r.outcome for r in batch.outcomes()[1:CHUNK]]
    assert confirmed == [PublishOutcome.CONFIRMED] * (CHUNK - 1)
