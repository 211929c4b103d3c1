"""A broker outage is told in a few clear lines, not hundreds of pika tracebacks.

The gateway reaches the shared RabbitMQ through a TCP forwarder of the
test's own (tests/tcp_proxy.py); cutting the forwarder is the outage, so the
shared broker and the other tests are never disturbed.
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest
from tcp_proxy import TcpProxy

from gateway import logging_setup
from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, notification_envelope, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_a_broker_outage_logs_once_when_it_goes_and_once_when_it_comes_back(
    tmp_path: Path, vhost: str
) -> None:
    stream = io.StringIO()
    logging_setup.configure(stream=stream)
    try:
        with TcpProxy() as proxy:
            settings = make_settings(
                tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", proxy.url(vhost)
            )
            with running(settings) as gw:
                time.sleep(1)
                proxy.cut()
                # Work keeps arriving during the outage: the sender loop tries and fails.
                taken = outbound.accept_envelope(gw, "332", notification_envelope("332", "336"))
                time.sleep(12)
                proxy.restore()
                wait_for(
                    lambda: (
                        gw.ledger.find(
                            message_id=taken.message_ids[0],
                            direction=Direction.OUTBOUND,
                            with_history=False,
                        )[0].status
                        == Status.DELIVERED
                    ),
                    timeout_s=60,
                    what="the message sent during the outage delivered after it",
                )
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert not [e for e in lines if e["logger"].startswith("pika")]
    assert not [e for e in lines if "exception" in e]
    down = [e for e in lines if e.get("broker_state") == "down"]
    up = [e for e in lines if e.get("broker_state") == "up"]
    # The one line names the socket's own cause: which connection notices
    # first (a live one reset by the cut, or a new one refused) is a race.
    assert len(down) == 1
    assert any(c in down[0]["message"] for c in ("Connection refused", "Connection reset")), down
    assert len(up) == 1 and "answers again after" in up[0]["message"]
    assert len(lines) <= 8, [e["message"] for e in lines]
