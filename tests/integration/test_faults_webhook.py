"""A webhook endpoint answering 503 for a while: every message arrives, repeats keep their key.

Wolverhampton's (336) connector is pointed at an HTTP server in the test
(a settings override), which checks each POST's HMAC and idempotency key.
It answers 503 for a few seconds mid-stream; the handover loop backs off
and carries on. Every one of the 2,000 messages ends up taken (2xx); a
message taken twice is allowed only with the same idempotency key.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.settings import ConnectorSettings
from tests.integration.faults import COUNT, Ends, WebhookSystem, stream_with_fault, with_connector
from tests.integration.gateways import make_settings, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET = b"fault-test-shared-secret-0123456789"


def test_webhook_answering_503_for_a_while_loses_nothing_and_repeats_only_by_key(
    tmp_path: Path, vhost: str
) -> None:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    local = WebhookSystem(SECRET)
    local.listen()
    sender = make_settings(tmp_path, ("332",), f"sqlite:///{tmp_path / 's.db'}", vhost)
    receiver = with_connector(
        make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'r.db'}", vhost),
        "336",
        ConnectorSettings(kind="webhook", url=local.url, hmac_secret_file=str(secret_file)),
    )

    def outage() -> None:
        local.failing.set()
        time.sleep(4)
        local.failing.clear()

    with running(receiver), running(sender):
        outcome = stream_with_fault(Ends(sender), local, outage)
    refused = [p for p in local.posts if p.status == 503]
    assert refused, "the endpoint never saw a request while it was failing"
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert local.problems == []  # every POST had a valid HMAC and key == message id
    # Repeats (a POST that succeeded just before a crash) only with the message's own key.
    for message_id in outcome.tally.repeated:
        keys = {p.idempotency_key for p in local.posts if p.message_id == message_id}
        assert keys == {message_id}
    assert outcome.sender_statuses.get("DELIVERED") == COUNT
