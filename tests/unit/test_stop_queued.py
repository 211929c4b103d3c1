"""Stopping queued sends (consent withdrawn) moves only what has not left and is not
being published: a sent message keeps SENT, one another replica is publishing goes out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from local_systems import signed_inbound
from support.gateways import memory_gateway

from gateway.ledger.status import Status


def test_stopping_queued_sends_leaves_sent_and_claimed_messages_as_they_are(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    ledger = gw.ledger
    signed = signed_inbound(gw, "332", "336", 3)
    with ledger.transaction() as conn:
        sent_pk, claimed_pk, queued_pk = ledger.record(
            [replace(m, receipt_due=False) for m in signed], conn
        )
    now = gw.clock()
    lease = now + timedelta(seconds=60)
    assert [i.pk for i in ledger.claim_outbox(1, ("332",), now, lease)] == [sent_pk]
    ledger.mark_sent([sent_pk], now + timedelta(seconds=30))
    assert [i.pk for i in ledger.claim_outbox(1, ("332",), now, lease)] == [claimed_pk]

    with ledger.transaction() as conn:
        stopped = ledger.stop_queued([sent_pk, claimed_pk, queued_pk], "consent withdrawn", conn)

    assert stopped == [queued_pk]
    status = {r.pk: r.status for r in ledger.find(authority="332", with_history=False)}
    assert status == {sent_pk: Status.SENT, claimed_pk: Status.SIGNED, queued_pk: Status.REJECTED}
