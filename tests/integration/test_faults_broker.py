"""The broker restarted or dropping every connection mid-stream: nothing lost, nothing twice.

Two gateways (worker threads in this process) on a vhost of the test's
own; 2,000 messages stream from Dudley (332) to Wolverhampton (336), whose
local system pulls and acknowledges them. The restart happens on a private
RabbitMQ node (``private_broker``), never on the machine's shared one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.ledger.store import Ledger
from tests.integration.faults import COUNT, Ends, stream_with_fault
from tests.integration.gateways import make_settings, running
from tests.integration.private_broker import PrivateBroker
from tests.integration.procs import PullSystem, inbound_rows
from tests.integration.rabbit_fixtures import rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _vhost_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _stream(tmp_path: Path, vhost: str, fault: object) -> None:
    sender = make_settings(tmp_path, ("332",), f"sqlite:///{tmp_path / 'sender.db'}", vhost)
    receiver_url = f"sqlite:///{tmp_path / 'receiver.db'}"
    receiver = make_settings(tmp_path, ("336",), receiver_url, vhost)
    with running(receiver), running(sender):
        local = PullSystem(Ledger.open(receiver_url), "336")
        outcome = stream_with_fault(Ends(sender), local, fault)  # type: ignore[arg-type]
    rows = inbound_rows(Ledger.open(receiver_url), "336")
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert outcome.tally.repeated == {}
    assert {m: n for m, n in rows.items() if n > 1} == {}
    assert outcome.sender_statuses.get("DELIVERED") == COUNT


@pytest.mark.serial
def test_rabbitmq_restarted_mid_stream_loses_and_repeats_nothing(
    tmp_path: Path, private_broker: PrivateBroker, private_vhost: str
) -> None:
    def restart_broker() -> None:
        private_broker.stop_app()
        time.sleep(2)  # the gateways see the broker gone and back off
        private_broker.start_app()
        private_broker.await_startup()

    _stream(tmp_path, private_vhost, restart_broker)


def test_every_connection_closed_by_the_broker_mid_stream_loses_and_repeats_nothing(
    tmp_path: Path, vhost: str
) -> None:
    # Only this test's vhost: the other tests' connections are left alone.
    def close_all() -> None:
        rabbitmqctl("close_all_connections", "--vhost", _vhost_name(vhost), "cafgw fault test")

    _stream(tmp_path, vhost, close_all)
