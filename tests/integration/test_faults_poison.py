"""A poison message (its processing fails every time) is parked; the others flow on.

An applier that raises for one marked message stands in for a bug or a
message the local state cannot take. The inbound service isolates it from
its batch, the broker retries it with backoff, and after the retry budget
it sits in Wolverhampton's parking queue with its reason, while the 2,000
others reach the local system once each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.feature import ApplyContext, Feature, Received
from gateway.features import standard
from gateway.ledger.store import Ledger
from gateway.model import IssueLogEntry, MessageType
from gateway.transport.retry import attempt_of, parked_reason
from tests.integration.faults import COUNT, Ends, stream_with_fault
from tests.integration.gateways import make_settings, running, wait_for
from tests.integration.procs import PullSystem, feed, feeder, signed_batch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

POISON = "POISON: this entry makes its applier fail"


def _fails_on_poison(_ctx: ApplyContext, msg: Received) -> None:
    body = msg.env.body
    if isinstance(body, IssueLogEntry) and body.description == POISON:
        raise RuntimeError("simulated bug: this message can never be applied")


# The receiver runs the standard features and this one, whose applier has a bug.
POISONED_FEATURES = (
    *standard(),
    Feature("poison", appliers={MessageType.ISSUE_LOG_ENTRY: _fails_on_poison}),
)


def test_poison_message_ends_in_parking_without_holding_up_the_others(
    tmp_path: Path, vhost: str
) -> None:
    delivery = {"retry_budget": 2, "retry_backoff_s": [0.5, 1.0], "receipt_deadline_s": 600}
    sender = make_settings(
        tmp_path, ("332",), f"sqlite:///{tmp_path / 's.db'}", vhost, delivery=delivery
    )
    receiver_url = f"sqlite:///{tmp_path / 'r.db'}"
    receiver = make_settings(tmp_path, ("336",), receiver_url, vhost, delivery=delivery)
    poison_id: list[str] = []

    def send_poison() -> None:
        gw = feeder(sender)
        (message,) = signed_batch(gw, "332", "336", 1, description=POISON)
        feed(gw, [message])
        poison_id.append(message.message_id)

    with running(receiver, features=POISONED_FEATURES) as rgw, running(sender):
        local = PullSystem(Ledger.open(receiver_url), "336")
        outcome = stream_with_fault(Ends(sender), local, send_poison, trigger_at=COUNT // 10)
        wait_for(lambda: bool(rgw.transport.peek_parked("336")), 60, "the poison parked")
        parked = rgw.transport.peek_parked("336")
    assert outcome.tally.lost == [], f"{len(outcome.tally.lost)} of {COUNT} lost"
    assert outcome.tally.repeated == {}
    assert poison_id[0] not in local.handed
    assert [p.message_id for p in parked] == poison_id
    assert "processing failed: RuntimeError" in parked_reason(parked[0].headers)
    assert attempt_of(parked[0].headers) == 2
