"""A correction's replacement is judged as that record sent alone would be, and stays on
the original's case: a third LA (334), party to nothing of Sandwell's, may not "correct"
its own harmless notice into a family-facing notice on Sandwell's restricted case
FWI-553977, on Sandwell's thread, which sent alone is refused. Found by a review,
2026-12-06."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import SANDWELL, memory_gateway, pump, submit

from gateway.context import Gateway
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Audience,
    Body,
    Correction,
    LegalBasis,
    MessageRef,
    Notification,
    NotificationType,
)
from gateway.outbox import new_envelope

pytestmark = pytest.mark.timeout(120)


def _from_334(
    gw: Gateway, body: Body, thread: str, in_reply_to: str | None = None
) -> MessageRecord:
    """``body`` signed by Walsall (334) to Coventry (330) and delivered: 330's row of it."""
    env = new_envelope(
        gw.clock,
        sender="334",
        recipient="330",
        body=body,
        correlation=thread,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=in_reply_to,
    )
    gw.ledger.record([gw.outbox.sign(env)])
    pump(gw)
    [row] = gw.ledger.find(
        message_id=env.header.message_id, authority="330", direction=Direction.INBOUND
    )
    return row


def test_a_correction_cannot_carry_a_family_notice_onto_a_case_its_sender_is_not_party_to(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "333", "sandwell-xml", SANDWELL.read_bytes(), SANDWELL.name)
    pump(gw)
    thread = next(
        r.correlation_id
        for r in gw.ledger.find(authority="330", direction=Direction.INBOUND, limit=200)
        if r.case_ref == "FWI-553977"
    )
    family = Notification(
        NotificationType.FAMILY_NOTICE, "FWI-553977", "About your case", audience=Audience.FAMILY
    )
    # The direct route is refused (the existing tests hold this):
    direct = _from_334(gw, family, thread)
    assert direct.status == Status.QUARANTINED, direct.reason
    # 334's own harmless notice, on a case of its own:
    got = _from_334(gw, Notification(NotificationType.SERVICE_GAP, "W-1", "a gap"), "W-1")
    assert got.status != Status.QUARANTINED, got.reason
    # ...then "corrected" into a family notice on Sandwell's restricted case:
    fix = Correction(MessageRef(got.message_id, got.digest or ""), "typo", family)
    c = _from_334(gw, fix, thread, in_reply_to=got.message_id)
    assert c.status == Status.QUARANTINED, c.reason
    assert "correction.same-record" in (c.reason or "")
    assert c.message_id not in {i.message_id for i in gw.ledger.inbox("330")}
