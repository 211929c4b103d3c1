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
from urllib.parse import quote

import pytest
from local_systems import signed_inbound
from sqlalchemy import create_engine, text
from support.gateways import memory_gateway

from gateway.context import Gateway
from gateway.ledger.notify import CHANNEL, channel_name
from gateway.ledger.status import Direction, Status
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import OUTBOX, TOPICS
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


def test_a_wake_up_in_a_savepoint_rolled_back_is_sent_again_by_its_transaction(
    pair: tuple[Gateway, Worker],
) -> None:
    writer, _worker = pair
    sent = signed_inbound(writer, SENDER, RECIPIENT, 2)
    with writer.ledger.transaction() as conn:
        savepoint = conn.begin_nested()
        writer.ledger.announce(conn, OUTBOX)  # its NOTIFY goes with the savepoint
        savepoint.rollback()
        writer.ledger.record(sent, conn)  # wakes the sender loops again: it must be sent
    wait_for(lambda: published(writer, {m.message_id for m in sent}), 20, "published")


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
            {"listen": f'LISTEN "{CHANNEL}"'},
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


def _in_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on the search path (the server's own quoting)."""
    quoted = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={quoted}"


def test_gateways_in_two_schemas_of_one_database_do_not_wake_each_other(
    tmp_path: Path, pg_url: str
) -> None:
    # PostgreSQL's channels are per database: a channel per schema keeps them apart.
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text('CREATE SCHEMA ledger_a; CREATE SCHEMA "Ledger-B"'))
    admin.dispose()
    url_a, url_b = _in_schema(pg_url, "ledger_a"), _in_schema(pg_url, '"Ledger-B"')
    hosted = (SENDER, RECIPIENT)
    transport = MemoryTransport()
    writer_a = memory_gateway(tmp_path / "a", hosted, transport=transport, ledger_url=url_a)
    writer_b = memory_gateway(tmp_path / "b", hosted, transport=transport, ledger_url=url_b)
    other_a = memory_gateway(tmp_path / "a", hosted, transport=transport, ledger_url=url_a)
    worker = Worker(other_a, other_a.transport, fallback_s=HOUR_S)
    worker.start()
    try:
        listener = worker.listener
        assert listener is not None and listener.wait_listening(20)
        assert listener.channel == channel_name("ledger_a") == "cafgw_work_ledger_a"
        time.sleep(1.0)  # the loops' first looks are over
        in_b = signed_inbound(writer_b, SENDER, RECIPIENT, 2)
        with writer_b.ledger.transaction() as conn:
            writer_b.ledger.record(in_b, conn)  # schema B's work: not A's to hear
        in_a = signed_inbound(writer_a, SENDER, RECIPIENT, 2)
        with writer_a.ledger.transaction() as conn:
            writer_a.ledger.record(in_a, conn)

        wait_for(lambda: published(writer_a, {m.message_id for m in in_a}), 20, "published")
        time.sleep(0.5)  # a late notification from B would be counted by now

        assert listener.heard == 1  # A's commit only
        rows_b = writer_b.ledger.find(authority=SENDER, direction=Direction.OUTBOUND)
        assert {r.status for r in rows_b} == {Status.SIGNED}  # nobody listens on B
    finally:
        worker.close()
        for gw in (writer_a, writer_b, other_a):
            gw.ledger.engine.dispose()
