"""A publish on the open connection only (``open_only``, the consumer's receipts)
never waits on the lock a reconnect holds, nor long after its confirm timeout.
The publisher's link is a fake here: the real broker is in
tests/integration/test_rabbit_transport.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from gateway.transport.base import OutgoingMessage, PublishOutcome
from gateway.transport.publisher import ABANDON_OPEN_ONLY_S, AsyncPublisher

pytestmark = pytest.mark.timeout(30)

MESSAGE = OutgoingMessage(routing_key="336.Receipt.332", body=b"x", message_id="m-1")


class NackingLink:
    """A link whose broker nacks every message at once."""

    closed = False

    def __init__(self) -> None:
        self.closing = 0

    def call(self, fn: Callable[[], None], *, closing: bool = False) -> bool:
        if self.closed and not closing:
            return False  # as a real link: a closed one runs nothing unless told
        threading.Thread(target=fn).start()
        return True

    def send(self, batch: Any) -> None:
        for i in range(len(batch.messages)):
            batch.settle(i, PublishOutcome.NACKED, "nacked")

    def close_soon(self) -> None:
        self.closing += 1

    def charge_cpu(self) -> None:
        pass


class StuckLink(NackingLink):
    """A link whose IO thread neither confirms nor gives the messages up."""

    def send(self, batch: Any) -> None:
        pass

    def abandon(self, batch: Any, reason: str) -> None:
        pass


def publisher(link: NackingLink) -> AsyncPublisher:
    made = AsyncPublisher.__new__(AsyncPublisher)
    made._lock = threading.Lock()
    made._link = link  # type: ignore[assignment]
    made.links_opened = 1
    return made


def test_a_nacked_publish_on_the_open_connection_retires_it_without_the_reconnect_lock() -> None:
    link = NackingLink()
    p = publisher(link)
    with p._lock:  # another thread is opening a connection, with backoff
        began = time.monotonic()
        (result,) = p.publish([MESSAGE], 2.0, open_only=True)
        took = time.monotonic() - began
    assert result.outcome is PublishOutcome.NACKED
    assert took < 1.0
    assert link.closed  # retired all the same: the next publish opens a new one
    time.sleep(0.05)
    assert link.closing == 1


def test_with_no_confirm_an_open_only_publish_gives_up_soon_after_its_timeout() -> None:
    p = publisher(StuckLink())
    began = time.monotonic()
    (result,) = p.publish([MESSAGE], 0.3, open_only=True)
    took = time.monotonic() - began
    assert result.outcome is PublishOutcome.FAILED
    assert "no confirm within 0.3 s" in (result.reason or "")
    assert took < 0.3 + ABANDON_OPEN_ONLY_S + 0.5  # not the 2 s others wait
