"""Local delivery over the real RabbitMQ: a webhook local system that is down for a
while (and a gateway restarted meanwhile) gets every message once when it returns;
a file-drop local system only ever sees whole files, each once."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest
from local_systems import WebhookReceiver, secret_file, signed_inbound, with_connector

from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.settings import Settings
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SENDER, RECIPIENT = "332", "336"
COUNT = 150
# Short steps so that the test waits seconds, not minutes.
FAST_LOCAL = {"local_retry_backoff_s": [0.1, 0.2, 0.4, 0.8]}


def inbound_statuses(ledger: Ledger) -> Counter[Status]:
    rows = ledger.find(
        authority=RECIPIENT, direction=Direction.INBOUND, limit=100_000, with_history=False
    )
    return Counter(r.status for r in rows if r.message_type != "Receipt")


def pair(
    tmp_path: Path, vhost: str, ledger_url: str, **connector: object
) -> tuple[Settings, Settings]:
    sender = make_settings(tmp_path, (SENDER,), f"sqlite:///{tmp_path / 'sender.db'}", vhost)
    receiver = make_settings(
        tmp_path, (RECIPIENT,), ledger_url, vhost, authority_delivery={RECIPIENT: FAST_LOCAL}
    )
    return sender, with_connector(receiver, RECIPIENT, **connector)


def test_webhook_system_down_for_a_while_gets_every_message_once_when_it_returns(
    tmp_path: Path, vhost: str, ledger_url: str
) -> None:
    secret_path, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as endpoint:
        sender_settings, receiver_settings = pair(
            tmp_path,
            vhost,
            ledger_url,
            kind="webhook",
            url=endpoint.url,
            hmac_secret_file=str(secret_path),
        )
        endpoint.fail_with(503)
        with running(receiver_settings) as receiver, running(sender_settings) as sender:
            batch = signed_inbound(sender, SENDER, RECIPIENT, COUNT)
            ids = [m.message_id for m in batch]
            sender.ledger.record(batch)
            wait_for(
                lambda: inbound_statuses(receiver.ledger)[Status.VERIFIED] == COUNT,
                timeout_s=60,
                what="every message received while the local system is down",
            )
            wait_for(
                lambda: len(endpoint.snapshot()[0]) >= 3, what="a few refused handover attempts"
            )
        # The receiving gateway stops (as in a restart) while its local system is still down.
        calls_while_down, taken = endpoint.snapshot()
        assert not taken
        assert {c.answered for c in calls_while_down} == {503}
        # Backoff: a handful of attempts, not one per message per turn.
        assert len(calls_while_down) < COUNT
        endpoint.fail_with(None)
        with running(receiver_settings) as receiver:
            wait_for(
                lambda: inbound_statuses(receiver.ledger)[Status.ACKNOWLEDGED] == COUNT,
                timeout_s=60,
                what="every message acknowledged once the local system is back",
            )
            statuses = inbound_statuses(receiver.ledger)
        calls, taken = endpoint.snapshot()
    assert set(taken) == set(ids)
    assert max(taken.values()) == 1, "a message was handed over twice without a crash"
    assert all(c.signature_ok for c in calls)
    assert statuses == Counter({Status.ACKNOWLEDGED: COUNT})
    for message_id in ids[:3]:
        body = endpoint.bodies[message_id]
        env = element_to_envelope(xmlsafe.parse(body, max_bytes=1_000_000, max_depth=64))
        assert env.header.message_id == message_id


class DropReader:
    """The local system of a file drop: reads whole visible files, then removes them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: Counter[str] = Counter()
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for name in sorted(os.listdir(self.folder)):
                if name.startswith("."):
                    continue  # staged or temporary: not ours yet
                path = self.folder / name
                data = path.read_bytes()
                try:
                    env = element_to_envelope(
                        xmlsafe.parse(data, max_bytes=1_000_000, max_depth=64)
                    )
                    if f"{env.header.message_id}.xml" != name:
                        self.problems.append(f"{name}: holds {env.header.message_id}")
                except Exception as exc:  # any parse failure means a partial file
                    self.problems.append(f"{name}: {exc}")
                self.seen[name.removesuffix(".xml")] += 1
                path.unlink()
            self.stop.wait(0.02)


def test_file_drop_system_sees_each_message_once_as_a_whole_file(
    tmp_path: Path, vhost: str
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    sender_settings, receiver_settings = pair(
        tmp_path, vhost, f"sqlite:///{tmp_path / 'receiver.db'}", kind="file", directory=str(drop)
    )
    reader = DropReader(drop)
    reader.thread.start()
    try:
        with running(receiver_settings) as receiver, running(sender_settings) as sender:
            batch = signed_inbound(sender, SENDER, RECIPIENT, COUNT)
            ids = [m.message_id for m in batch]
            sender.ledger.record(batch)
            wait_for(
                lambda: inbound_statuses(receiver.ledger)[Status.ACKNOWLEDGED] == COUNT,
                timeout_s=90,
                what="every dropped file taken and acknowledged",
            )
            (one,) = receiver.ledger.find(message_id=ids[0], direction=Direction.INBOUND)
    finally:
        reader.stop.set()
        reader.thread.join(5)
    assert reader.problems == []
    assert set(reader.seen) == set(ids)
    assert max(reader.seen.values()) == 1
    assert [h.status for h in one.history] == [
        Status.RECEIVED,
        Status.VERIFIED,
        Status.DELIVERED_LOCAL,
        Status.ACKNOWLEDGED,
    ]
    assert [n for n in os.listdir(drop)] == []
