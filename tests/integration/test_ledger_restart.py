"""PostgreSQL restarted mid-stream: the gateways hold what they cannot record, reconnect,
lose nothing and hand nothing over twice; meanwhile /readyz says the ledger is why.

The database server is the test's own (``private_postgres``: own data
directory, port and user), never the machine's. Wolverhampton (336) keeps
its ledger on it; 2,000 messages stream from Dudley (332, an SQLite ledger, so
that it keeps publishing) through the machine's broker (a vhost of the test's
own) while the server is stopped for a few seconds and started again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.ledger.store import Ledger
from tests.integration.faults import COUNT, Ends, stream_with_fault
from tests.integration.gateways import make_settings, running
from tests.integration.private_postgres import PrivatePostgres
from tests.integration.procs import PullSystem, inbound_rows, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(300)]

DOWN_S = 4.0


@dataclass
class AckingPullSystem(PullSystem):
    """The pull local system, counting a message as handed over once its acknowledgement
    went through. One read while the database goes down may be offered again (its
    acknowledgement failed): the local system keys its store on the id, as
    docs/delivery.md asks, so ``offered`` counts those apart."""

    offered: Counter[str] = field(default_factory=Counter)

    def poll_once(self) -> int:
        items = self.ledger.inbox(self.authority, limit=500)
        for item in items:
            self.offered[item.message_id] += 1
            self.ledger.acknowledge_local(self.authority, item.message_id)
            self.handed[item.message_id] += 1
        return len(items)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own, stopped and deleted afterwards."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _readyz(client: TestClient) -> tuple[int, dict[str, Any]]:
    answer = client.get("/readyz")
    return answer.status_code, answer.json()


def test_postgresql_restarted_mid_stream_loses_and_repeats_nothing_and_readyz_says_why(
    tmp_path: Path, vhost: str, postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway")
    # The sender's ledger is elsewhere, so that it keeps publishing through the outage.
    sender_url = f"sqlite:///{tmp_path / 'sender.db'}"
    receiver_url = postgres.create_database(f"receiver_{uuid.uuid4().hex[:8]}")
    sender = make_settings(tmp_path, ("332",), sender_url, vhost)
    receiver = make_settings(tmp_path, ("336",), receiver_url, vhost)
    seen: dict[str, Any] = {}

    with running(receiver) as gw, running(sender):
        client = TestClient(create_app(gw, ApiKeys(gw.settings.api_keys_file)))
        assert _readyz(client)[0] == 200

        def restart() -> None:
            postgres.stop()
            stopped = time.monotonic()
            seen["down"] = _readyz(client)
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped)))
            postgres.start()
            seen["restarted_at"] = time.monotonic()
            wait_until(lambda: _readyz(client)[0] == 200, 30, "/readyz ready again")
            seen["ready_after_s"] = time.monotonic() - seen["restarted_at"]

        local = AckingPullSystem(Ledger.open(receiver_url), "336")
        # Early in the stream, so that deliveries arrive while the database is down.
        outcome = stream_with_fault(
            Ends(sender),
            local,  # type: ignore[arg-type]
            restart,
            trigger_at=20,
        )
        parked = gw.transport.peek_parked("336")
    rows = inbound_rows(Ledger.open(receiver_url), "336")

    status, body = seen["down"]
    assert status == 503
    assert body["checks"]["ledger"]["ok"] is False
    assert "ledger unavailable" in body["checks"]["ledger"]["detail"]
    assert "held" in body["checks"]["ledger"]["detail"]
    assert body["checks"]["broker"]["ok"] is True
    again = sum(1 for n in local.offered.values() if n > 1)
    print(
        f"\nPostgreSQL down {DOWN_S:.0f} s mid-stream; /readyz ready "
        f"{seen['ready_after_s']:.1f} s after it was back; {COUNT} messages in "
        f"{outcome.seconds:.0f} s; {again} offered again after an acknowledgement failed"
    )
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert outcome.tally.repeated == {}
    assert {m: n for m, n in rows.items() if n > 1} == {}
    assert outcome.sender_statuses.get("DELIVERED") == COUNT
    assert parked == [], "an outage of the ledger is no message's failed attempt"
    said = [r.getMessage() for r in caplog.records]
    assert any("holding" in m and "unacknowledged" in m for m in said), "nothing was held"
    assert not any("ledger failed while recording" in m for m in said), "sent to retry instead"
