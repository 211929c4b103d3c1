"""Two replicas on one PostgreSQL ledger: one records originals while the other
receives their recalls, at the same moment; no original is handed over.

A recall that comes before its original stands, and the original is withdrawn on
arrival (``lifecycle.receiver.on_arrival``). With replicas, the recall and its
original can be judged at once in two processes: the recall finding no original
here stands, and the original finding no recall standing would be recorded and
handed to the local system, although its sender recalled it. The recording
transaction locks the id the recall names (``pipeline._lock_names``), the lock
its original takes, so one waits for the other and whichever comes second sees
the first. The recalls here name threads of their own, so nothing but that lock
orders the two.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from support.received import assessments, recall_of

from gateway.connectors import state
from gateway.context import Gateway, build
from gateway.ledger.status import Direction, Status
from gateway.lifecycle.tables import standing
from gateway.services import receiving
from gateway.transport.base import Verdict
from gateway.transport.memory import MemoryTransport
from tests.integration.gateways import make_settings
from tests.integration.test_replicas import close, replicas_of, together

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SENDER, RECIPIENT = "332", "336"
PAIRS = 40
BATCH = 4


def test_originals_and_their_recalls_received_at_once_by_two_replicas_are_all_withdrawn(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path, (RECIPIENT,), pg_url, "amqp://unused/")
    replicas = replicas_of(settings, 2, MemoryTransport)
    peer = build(make_settings(tmp_path, (SENDER,), pg_url, "amqp://unused/"), MemoryTransport())
    try:
        originals = assessments(peer, replicas[0], [f"DUD-{n}" for n in range(PAIRS)])
        recalls = [
            recall_of(peer, original, f"RECALL-{n}", 10_000) for n, original in enumerate(originals)
        ]
        # Each replica takes its messages in an order of its own, so that pairs meet
        # at every offset within a batch and between batches.
        random.Random(14).shuffle(recalls)
        work = {
            0: [originals[i : i + BATCH] for i in range(0, PAIRS, BATCH)],
            1: [recalls[i : i + BATCH] for i in range(0, PAIRS, BATCH)],
        }
        verdicts: list[Verdict] = []

        def step(gw: Gateway) -> int:
            mine = work[replicas.index(gw)]
            if not mine:
                return 0
            out = receiving.handle_batch(gw, mine.pop(0))
            verdicts.extend(d.verdict for d in out)
            return len(out)

        together(replicas, step)

        assert Counter(verdicts) == Counter({Verdict.ACK: 2 * PAIRS})
        rows = {
            r.message_id: r
            for r in replicas[0].ledger.find(
                authority=RECIPIENT, direction=Direction.INBOUND, limit=1_000, with_history=False
            )
        }
        # Whichever came first, every original ends withdrawn and none is left for the
        # local system: recorded first, its recall withdrew it; recalled first, it was
        # withdrawn on arrival.
        assert {rows[o.message_id].status for o in originals} == {Status.WITHDRAWN}
        assert {rows[r.message_id].status for r in recalls} == {Status.WITHDRAWN}
        gw = replicas[0]
        assert state.due(gw.ledger, RECIPIENT, gw.clock(), 1_000) == []  # nothing to hand over
        with replicas[0].ledger.transaction() as conn:
            left = conn.execute(
                select(standing.c.original_id).where(
                    standing.c.authority == RECIPIENT, standing.c.resolved_at.is_(None)
                )
            ).all()
        assert left == []  # every recall that stood met its original
    finally:
        close([*replicas, peer])
