"""A receiving gateway with check processes takes a backlog over the real RabbitMQ:
every message verified and recorded once, every one receipted as DELIVERED."""

from __future__ import annotations

import multiprocessing
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.context import build
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.status import Direction, Status
from gateway.model import Assessment, Envelope
from gateway.transport.rabbit import RabbitTransport
from gateway.worker import Worker
from tests.integration.gateways import make_settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLE = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "assessment.xml"
SENDER, RECIPIENT = "332", "336"
BACKLOG = 120


def _assessments(n: int) -> list[Envelope]:
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=1_000_000, max_depth=64)
    template = element_to_envelope(root)
    assert isinstance(template.body, Assessment)
    out = []
    for i in range(n):
        ref = f"DUD-POOL-{i:05d}"
        header = replace(
            template.header,
            message_id=str(uuid.uuid4()),
            correlation_id=ref,
            sender=SENDER,
            recipient=RECIPIENT,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        out.append(Envelope(header, replace(template.body, case_ref=ref)))
    return out


def test_a_backlog_checked_in_a_check_process_is_recorded_once_and_all_delivered(
    tmp_path: Path, vhost: str
) -> None:
    sending = make_settings(tmp_path, (SENDER,), f"sqlite:///{tmp_path / 's.db'}", vhost)
    receiving = make_settings(
        tmp_path, (RECIPIENT,), f"sqlite:///{tmp_path / 'r.db'}", vhost, check_processes=1
    )
    sender = build(sending, RabbitTransport.from_settings(sending))
    receiver = build(receiving, RabbitTransport.from_settings(receiving))
    sender.transport.declare((SENDER, RECIPIENT))
    sender_worker = Worker(sender, RabbitTransport.from_settings(sending))
    receiver_worker = Worker(receiver, RabbitTransport.from_settings(receiving))
    pool = receiver_worker.check_pool
    assert pool is not None and pool.processes == 1
    try:
        sender_worker.start()
        made = [sender.outbox.sign(env) for env in _assessments(BACKLOG)]
        with sender.ledger.transaction() as conn:
            sender.ledger.record(made, conn)
        ids = {m.message_id for m in made}

        def statuses() -> list[Status]:
            return [
                r.status
                for r in sender.ledger.find(authority=SENDER, direction=Direction.OUTBOUND)
                if r.message_id in ids
            ]

        # The whole backlog waits in the inbox first: the consumer takes it in batches
        # large enough to be shared with the check process.
        wait_for(lambda: statuses().count(Status.SENT) == BACKLOG, what="the backlog sent")
        receiver_worker.start()
        wait_for(
            lambda: statuses().count(Status.DELIVERED) == BACKLOG,
            timeout_s=90,
            what="every message receipted",
        )
        inbox = [
            i for i in receiver.ledger.inbox(RECIPIENT, limit=2 * BACKLOG) if i.message_id in ids
        ]
        assert sorted(i.message_id for i in inbox) == sorted(ids)  # each recorded once
        assert {i.status for i in inbox} == {Status.VERIFIED}
        assert pool.shared > 0 and pool.failures == 0
    finally:
        receiver_worker.close()
        sender_worker.close()
        for gw, worker in ((receiver, receiver_worker), (sender, sender_worker)):
            gw.transport.close()
            worker.consumer_transport.close()
            gw.ledger.engine.dispose()
    assert not multiprocessing.active_children()  # closing the worker ended its processes
