"""Queue figures for the dashboard and /metrics: ready, unacknowledged and consumers from
RabbitMQ's management API, or ready and consumers from a passive declare without it."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pika
import pytest

from gateway.ops.broker import RabbitProbe
from gateway.transport.rabbit import RabbitTransport
from tests.integration.gateways import make_settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_management_api_gives_unacknowledged_and_consumers_and_passive_is_the_fallback(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    transport = RabbitTransport.from_settings(settings)
    transport.declare(("336",))
    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    try:
        channel = conn.channel()
        for n in range(3):
            channel.basic_publish("", "caf.inbox.336", f"m{n}".encode())
        channel.basic_qos(prefetch_count=1)
        held = threading.Event()

        def hold(ch: object, method: object, props: object, body: bytes) -> None:
            held.set()  # never acknowledged while the test looks

        channel.basic_consume("caf.inbox.336", hold)
        wait_for(lambda: conn.process_data_events(0.1) or held.is_set(), what="one delivery")

        probe = RabbitProbe.from_settings(settings)
        assert probe.management_url == "http://127.0.0.1:15672"

        def managed() -> bool:
            s = probe.queue_stats()["caf.inbox.336"]
            conn.process_data_events(0)
            return s is not None and (s.ready, s.unacknowledged, s.consumers) == (2, 1, 1)

        # The management API's figures are refreshed every few seconds.
        wait_for(managed, timeout_s=30, what="management figures 2 ready, 1 unacked, 1 consumer")
        stats = probe.queue_stats()
        assert stats["caf.inbox.336"].source == "management"  # type: ignore[union-attr]
        assert stats["caf.parking.336"] is not None

        passive = RabbitProbe(
            vhost, probe.queues, management_url=f"http://127.0.0.1:{_closed_port()}"
        )
        found = passive.queue_stats()["caf.inbox.336"]
        assert found is not None and found.source == "passive"
        assert (found.ready, found.unacknowledged, found.consumers) == (2, None, 1)
    finally:
        conn.close()
        transport.close()
