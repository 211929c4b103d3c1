"""A message id names one message of an authority's inbound, whoever sent it.

The local system acknowledges (``POST /v1/inbox/{id}/ack``), the drop folder
names (``<id>.xml``) and "not ours" records a received message by its id alone.
A second sender's message under an id another sender's message holds would be
taken for it: acknowledging one acknowledged both, and its drop file replaced
the first's. Found by a fresh-eyes review of the receiving path (2026-12-06).
The receiver now quarantines such a message, naming whose id it is, and tells
its sender (a REJECTED receipt: its signature and route were proven).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from support.gateways import memory_gateway

from gateway.context import Gateway
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Envelope
from gateway.services.receiving import handle_batch
from gateway.transport.base import Delivery, Verdict, routing_key
from gateway.transport.provenance import publishers_for
from tests.integration.gateways import notification_envelope

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return memory_gateway(tmp_path, ("332", "335", "336"))


def _from(gw: Gateway, sender: str, message_id: str | None = None, tag: int = 1) -> Delivery:
    env = notification_envelope(sender, "336")
    if message_id is not None:
        env = Envelope(replace(env.header, message_id=message_id), env.body)
    signed = gw.outbox.sign(env)
    assert signed.body is not None
    return Delivery(
        gw.topology.inbox("336"),
        routing_key("336", "Notification", sender),
        signed.body,
        signed.message_id,
        {},
        0,
        tag,
        sorted(publishers_for(gw.settings.broker, sender))[0],
    )


def _rows(gw: Gateway, message_id: str) -> dict[str, tuple[Status, str]]:
    found = gw.ledger.find(message_id=message_id, authority="336", direction=Direction.INBOUND)
    return {r.sender: (r.status, r.reason or "") for r in found}


def test_a_message_under_an_id_another_senders_message_holds_is_quarantined_naming_whose(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    second = _from(gw, "335", first.message_id, tag=2)
    assert [d.verdict for d in handle_batch(gw, [second])] == [Verdict.ACK]
    rows = _rows(gw, first.message_id)
    assert rows["332"][0] is Status.VERIFIED
    status, reason = rows["335"]
    assert status is Status.QUARANTINED
    assert "message id already used by a message from 332" in reason
    # Only the first is the local system's: acknowledging the id takes only it.
    inbox = gw.ledger.inbox("336", include_restricted=True)
    assert [(i.sender, i.message_id) for i in inbox] == [("332", first.message_id)]
    assert gw.ledger.acknowledge_local("336", first.message_id)
    assert _rows(gw, first.message_id)["335"][0] is Status.QUARANTINED


def test_the_second_of_two_senders_messages_under_one_id_in_a_batch_is_quarantined(
    gw: Gateway,
) -> None:
    first = _from(gw, "335")
    second = _from(gw, "332", first.message_id, tag=2)
    assert [d.verdict for d in handle_batch(gw, [first, second])] == [Verdict.ACK] * 2
    rows = _rows(gw, first.message_id)
    assert rows["335"][0] is Status.VERIFIED
    assert rows["332"][0] is Status.QUARANTINED
    assert "already used by a message from 335" in rows["332"][1]


def test_the_refused_sender_is_owed_a_rejected_receipt_and_its_resend_is_a_repeat(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    second = _from(gw, "335", first.message_id, tag=2)
    handle_batch(gw, [first])
    handle_batch(gw, [second])
    handle_batch(gw, [replace(second, tag=3)])  # sent again: the first decision stands
    (row,) = [
        r for r in gw.ledger.find(message_id=first.message_id, authority="336") if r.sender == "335"
    ]
    assert row.status is Status.QUARANTINED
    assert row.history[-1].status is Status.DUPLICATE
    with gw.ledger.engine.connect() as conn:
        due, receipt = conn.execute(
            select(messages.c.receipt_due, messages.c.receipt_message_id).where(
                messages.c.id == row.pk
            )
        ).one()
    assert due or receipt is not None


def test_the_same_sender_sending_its_message_again_is_still_a_repeat_not_a_clash(
    gw: Gateway,
) -> None:
    first = _from(gw, "332")
    handle_batch(gw, [first])
    handle_batch(gw, [replace(first, tag=2)])
    assert _rows(gw, first.message_id)["332"][0] is Status.VERIFIED
