"""The local acknowledgement deadline: a message the recipient's local system never
acknowledged is reported to the sender as UNDELIVERABLE with a signed receipt, and
the sender shows it so. One in-memory gateway hosts both ends; the clock is set by
the test, and messages travel between the two authorities through the real
inbound and receipt services."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from local_systems import signed_inbound
from ops_helpers import Clock, make_gateway
from support.gateways import deliver_queue

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.connectors import deadline
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.status import Direction, Status
from gateway.model import Receipt, ReceiptOutcome
from gateway.services import delivery, receipts
from gateway.transport.base import Delivery

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"
DAY_S = 24 * 3600


def carry(gw: Gateway, sender: str, recipient: str, message_type: str) -> list[bytes]:
    """Publish what waits in the outbox, then hand ``recipient``'s queued messages (from
    ``sender``, of that type) to its receiving pipeline; their bodies. Receipts are
    already on their way: the loop that signs one publishes it."""
    delivery.publish_outbox(gw)
    bodies: list[bytes] = []

    def seen(batch: Sequence[Delivery]) -> None:
        assert {d.routing_key for d in batch} == {f"{recipient}.{message_type}.{sender}"}
        bodies.extend(d.body for d in batch)

    deliver_queue(gw, f"caf.inbox.{recipient}", seen)
    return bodies


def send_one(gw: Gateway) -> str:
    (message,) = signed_inbound(gw, SENDER, RECIPIENT, 1)
    gw.ledger.record([message])
    carry(gw, SENDER, RECIPIENT, "IssueLogEntry")
    receipts.send_receipts(gw)
    carry(gw, RECIPIENT, SENDER, "Receipt")
    assert sender_status(gw, message.message_id) == Status.DELIVERED
    return message.message_id


def sender_status(gw: Gateway, message_id: str) -> Status:
    (found,) = gw.ledger.find(message_id=message_id, authority=SENDER, direction=Direction.OUTBOUND)
    return found.status


def recipient_status(gw: Gateway, message_id: str) -> Status:
    (found,) = gw.ledger.find(
        message_id=message_id, authority=RECIPIENT, direction=Direction.INBOUND
    )
    return found.status


def test_unacknowledged_message_is_reported_undeliverable_to_the_sender_after_the_deadline(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    message_id = send_one(gw)
    limit_s = gw.settings.delivery_for(RECIPIENT).local_ack_deadline_s
    assert limit_s == 5 * DAY_S  # the default

    clock.advance(limit_s - 1)
    assert deadline.report_unacknowledged(gw) == 0
    assert recipient_status(gw, message_id) == Status.VERIFIED

    clock.advance(2)
    assert deadline.report_unacknowledged(gw) == 1
    assert recipient_status(gw, message_id) == Status.UNDELIVERABLE
    assert deadline.report_unacknowledged(gw) == 0  # reported once
    # No longer offered to the local system.
    assert message_id not in {i.message_id for i in gw.ledger.inbox(RECIPIENT)}
    assert not gw.ledger.acknowledge_local(RECIPIENT, message_id)

    # The receipt loop tells the sender, signed, with the UNDELIVERABLE outcome.
    assert receipts.send_receipts(gw) == 1
    (body,) = carry(gw, RECIPIENT, SENDER, "Receipt")
    receipt = element_to_envelope(xmlsafe.parse(body, max_bytes=100_000, max_depth=64)).body
    assert isinstance(receipt, Receipt)
    (item,) = receipt.items
    assert (item.message_id, item.outcome) == (message_id, ReceiptOutcome.UNDELIVERABLE)
    assert "did not acknowledge" in (item.reason or "")

    assert sender_status(gw, message_id) == Status.UNDELIVERABLE
    (sent,) = gw.ledger.find(message_id=message_id, authority=SENDER)
    assert [h.status for h in sent.history][-2:] == [Status.DELIVERED, Status.UNDELIVERABLE]

    # ...and the sender sees it through the API.
    keys = ApiKeys(tmp_path / "api-keys.json")
    key = keys.issue(SENDER)
    client = TestClient(create_app(gw, keys))
    answer = client.get(f"/v1/messages/{message_id}", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    (shown,) = [m for m in answer.json() if m["direction"] == "OUTBOUND"]
    assert shown["status"] == "UNDELIVERABLE"
    assert "did not acknowledge" in shown["reason"]


def test_acknowledged_message_is_never_reported_undeliverable(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    message_id = send_one(gw)
    clock.advance(DAY_S)
    assert gw.ledger.acknowledge_local(RECIPIENT, message_id)
    clock.advance(30 * DAY_S)
    assert deadline.report_unacknowledged(gw) == 0
    assert receipts.send_receipts(gw) == 0
    assert sender_status(gw, message_id) == Status.DELIVERED


def test_a_later_accepted_receipt_does_not_undo_undeliverable(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    message_id = send_one(gw)
    (digest,) = {r.digest for r in gw.ledger.find(message_id=message_id, authority=SENDER)}
    assert digest is not None
    clock.advance(6 * DAY_S)
    deadline.report_unacknowledged(gw)
    receipts.send_receipts(gw)
    carry(gw, RECIPIENT, SENDER, "Receipt")
    assert sender_status(gw, message_id) == Status.UNDELIVERABLE
    gw.ledger.mark_delivered(
        SENDER, [(message_id, digest, Status.DELIVERED, "late copy")], RECIPIENT
    )
    assert sender_status(gw, message_id) == Status.UNDELIVERABLE


def test_deadline_is_configurable_per_authority_and_other_keys_keep_the_defaults(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = make_gateway(
        tmp_path,
        hosted=(SENDER, RECIPIENT),
        clock=clock,
        delivery={"receipt_deadline_s": 45, "local_ack_deadline_s": 5 * DAY_S},
        authority_delivery={RECIPIENT: {"local_ack_deadline_s": 3600}},
    )
    assert gw.settings.delivery_for(RECIPIENT).local_ack_deadline_s == 3600
    # Keys the override leaves out come from the `delivery` section, not the built-in defaults.
    assert gw.settings.delivery_for(RECIPIENT).receipt_deadline_s == 45
    assert gw.settings.delivery_for(SENDER).local_ack_deadline_s == 5 * DAY_S
    message_id = send_one(gw)
    clock.advance(3601)
    assert deadline.report_unacknowledged(gw) == 1
    assert recipient_status(gw, message_id) == Status.UNDELIVERABLE
