"""On PostgreSQL a commit in one process wakes another process's loops (LISTEN/NOTIFY),
with no polling to fall back on, and the listener survives losing its connection.

Two gateways on one PostgreSQL database of the test's own, each with its own
engine (as two processes would have): the writer only records outbound
messages, as the API of another replica does; the other runs a worker whose
fallback poll is an hour, so only a notification can make it publish them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_systems import signed_inbound
from sqlalchemy import text
from support.gateways import memory_gateway

from gateway.context import Gateway
from gateway.ledger.notify import CHANNEL
from gateway.ledger.status import Direction, Status
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import TOPICS
from gateway.worker import Worker
from tests.integration.gateways import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOUR_S = 3600.0
SENDER, RECIPIENT = "332", "336"


@pytest.fixture
def pair(tmp_path: Path, pg_url: str) -> Iterator[tuple[Gateway, Worker]]:
    """A writer gateway, and a worker of another gateway on the same ledger, listening."""
    transport = MemoryTransport()
    hosted = (SENDER, RECIPIENT)
    writer = memory_gateway(tmp_path, hosted, transport=transport, ledger_url=pg_url)
    other = memory_gateway(tmp_path, hosted, transport=transport, ledger_url=pg_url)
    worker = Worker(other, other.transport, fallback_s=HOUR_S)
    worker.start()
    try:
        assert worker.listener is not None
        assert worker.listener.wait_listening(20)
        time.sleep(1.0)  # the loops' first looks (at start) are over: they sleep now
        yield writer, worker
    finally:
        worker.close()
        writer.ledger.engine.dispose()
        other.ledger.engine.dispose()


def published(writer: Gateway, ids: set[str]) -> bool:
    rows = writer.ledger.find(authority=SENDER, direction=Direction.OUTBOUND, with_history=False)
    left = {r.message_id for r in rows if r.status in (Status.SENT, Status.DELIVERED)}
    return ids <= left


def test_a_commit_by_another_engine_wakes_the_sender_loop_with_no_fallback_poll(
    pair: tuple[Gateway, Worker],
) -> None:
    writer, worker = pair
    assert worker.listener is not None
    sent = signed_inbound(writer, SENDER, RECIPIENT, 3)
    with writer.ledger.transaction() as conn:
        writer.ledger.record(sent, conn)
    # The fallback poll is an hour: only the NOTIFY can get these published.
    wait_for(lambda: published(writer, {m.message_id for m in sent}), 20, "published")
    assert worker.listener.heard >= 1


def test_the_listener_reconnects_after_its_backend_is_killed_wakes_every_loop_and_hears_again(
    pair: tuple[Gateway, Worker],
) -> None:
    writer, worker = pair
    listener = worker.listener
    assert listener is not None and listener.connects == 1
    before = {t: worker.wakeups.generation(t) for t in TOPICS}
    with writer.ledger.transaction() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = :listen"
            ),
            {"listen": f"LISTEN {CHANNEL}"},
        ).all()
    assert killed == [(True,)]
    wait_for(lambda: listener.connects == 2 and listener.wait_listening(0), 20, "reconnected")
    # It may have missed notifications while it was away: every loop looks once.
    assert all(worker.wakeups.generation(t) > before[t] for t in TOPICS)
    time.sleep(1.0)
    sent = signed_inbound(writer, SENDER, RECIPIENT, 2)
    with writer.ledger.transaction() as conn:
        writer.ledger.record(sent, conn)
    wait_for(lambda: published(writer, {m.message_id for m in sent}), 20, "published")
