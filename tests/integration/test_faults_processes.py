"""Gateways killed with SIGKILL mid-stream lose nothing and hand nothing over twice.

Both gateways are real OS processes (``cafgw run``) on a vhost of the
test's own; the test feeds 2,000 messages into the sender's outbox and
plays the receiving local system itself (pull + ack, or the file drop).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ledger.store import Ledger
from tests.integration.faults import COUNT, Ends, FileDropSystem, stream_with_fault
from tests.integration.procs import PullSystem, gateway_pair, inbound_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_sending_gateway_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    tmp_path: Path, vhost: str
) -> None:
    with gateway_pair(tmp_path, vhost) as pair:

        def kill_and_restart_sender() -> None:
            pair.sender.kill()
            pair.sender.start()

        local = PullSystem(Ledger.open(pair.receiver_ledger_url), pair.recipient_code)
        outcome = stream_with_fault(Ends(pair.sender.settings), local, kill_and_restart_sender)
        rows = inbound_rows(Ledger.open(pair.receiver_ledger_url), pair.recipient_code)
    assert pair.sender.starts == 2
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert outcome.tally.repeated == {}
    assert {m: n for m, n in rows.items() if n > 1} == {}
    assert outcome.sender_statuses.get("DELIVERED") == COUNT


@pytest.mark.parametrize("connector", ["pull", "file"])
def test_receiving_gateway_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    tmp_path: Path, vhost: str, connector: str
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    connectors = {"336": {"kind": "file", "directory": str(drop)}} if connector == "file" else {}
    with gateway_pair(tmp_path, vhost, connectors=connectors) as pair:

        def kill_and_restart_receiver() -> None:
            pair.receiver.kill()
            pair.receiver.start()

        local: PullSystem | FileDropSystem
        if connector == "file":
            local = FileDropSystem(directory=drop)
        else:
            local = PullSystem(Ledger.open(pair.receiver_ledger_url), pair.recipient_code)
        outcome = stream_with_fault(Ends(pair.sender.settings), local, kill_and_restart_receiver)
        rows = inbound_rows(Ledger.open(pair.receiver_ledger_url), pair.recipient_code)
    assert pair.receiver.starts == 2
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert outcome.tally.repeated == {}
    assert {m: n for m, n in rows.items() if n > 1} == {}
    if isinstance(local, FileDropSystem):
        assert local.problems == []
    assert outcome.sender_statuses.get("DELIVERED") == COUNT
