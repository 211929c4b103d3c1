"""The recipient's side of recall and correction (in-memory region): withdrawn before the
local system had it, or passed on with the handover date, proven in the signed receipt;
only the original's sender may recall; a recall follows a forwarded copy."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from policy_support import envelope_of, pump
from retention_support import Clock, dudley_shared, region

from gateway.cases.identity import correlation_id
from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.feature import ApplyContext, Received
from gateway.ledger import audit
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Route, Status
from gateway.lifecycle import outcomes, receiver, sender
from gateway.model import (
    ActionTaken,
    Assessment,
    LegalBasis,
    MessageRef,
    Recall,
    RecallReason,
    Receipt,
)
from gateway.outbox import new_envelope
from gateway.services import local_format

pytestmark = pytest.mark.timeout(120)


def _sent(gw: Gateway, authority: str, recipient: str, kind: str = "Assessment") -> MessageRecord:
    return next(
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500)
        if r.recipient == recipient and r.message_type == kind
    )


def _copy(gw: Gateway, authority: str, message_id: str) -> MessageRecord:
    [row] = gw.ledger.find(message_id=message_id, authority=authority, direction=Direction.INBOUND)
    return row


def _outcome(gw: Gateway, original: str) -> outcomes.RecallOutcome:
    with gw.ledger.transaction() as conn:
        [got] = outcomes.outcomes_of(conn, "332", original)
    return got


def _receipt_item_for(gw: Gateway, authority: str, message_id: str):  # type: ignore[no-untyped-def]
    """The item of ``authority``'s signed receipt that covers ``message_id``."""
    for row in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500):
        if row.message_type != "Receipt":
            continue
        env = envelope_of(gw, row)
        assert env is not None and isinstance(env.body, Receipt)
        for item in env.body.items:
            if item.message_id == message_id:
                return item
    raise AssertionError(f"no receipt of {authority} covers {message_id}")


def test_a_recall_before_handover_withdraws_the_original_and_the_receipt_says_so(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "333")
    assert _copy(gw, "333", original.message_id).status == Status.VERIFIED  # not pulled yet
    done = sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, None, "Jo")
    pump(gw)
    assert done.message_id is not None
    copy = _copy(gw, "333", original.message_id)
    assert copy.status == Status.WITHDRAWN
    assert original.message_id not in {i.message_id for i in gw.ledger.inbox("333")}
    recall_row = _copy(gw, "333", done.message_id)
    assert recall_row.status == Status.WITHDRAWN  # nothing to tell the local system
    item = _receipt_item_for(gw, "333", done.message_id)
    assert item.action == ActionTaken.WITHDRAWN and item.handed_over_at is None
    got = _outcome(gw, original.message_id)
    assert got.action == ActionTaken.WITHDRAWN.value and got.outcome == "DELIVERED"
    assert "withdrawn before its local system had it" in got.describe()
    assert audit.verify(gw.ledger) == []


def test_a_recall_after_handover_is_passed_on_with_the_handover_date(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "336")
    copy = _copy(gw, "336", original.message_id)
    gw.ledger.transition([copy.pk], Status.DELIVERED_LOCAL, "served to the local system (pull)")
    assert gw.ledger.acknowledge_local("336", original.message_id)
    handed = _copy(gw, "336", original.message_id).history[-2].at
    done = sender.recall(gw, "332", original.message_id, RecallReason.WRONG_CHILD, "row 1", "Jo")
    pump(gw)
    assert done.message_id is not None
    # The recall itself waits in the local system's inbox: that is how it is told.
    assert done.message_id in {i.message_id for i in gw.ledger.inbox("336")}
    after = _copy(gw, "336", original.message_id)
    assert after.status == Status.ACKNOWLEDGED
    assert any(h.status == Status.RECALLED for h in after.history)
    item = _receipt_item_for(gw, "336", done.message_id)
    assert item.action == ActionTaken.PASSED_ON
    assert item.handed_over_at == handed.replace(microsecond=0) or item.handed_over_at == handed
    got = _outcome(gw, original.message_id)
    assert got.action == ActionTaken.PASSED_ON.value and got.handed_over_at is not None
    assert "handed over" in got.describe()


def test_a_recall_from_anyone_but_the_sender_is_refused_and_recorded(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "333")
    hostile = new_envelope(
        gw.clock,
        sender="336",
        recipient="333",
        body=Recall(
            MessageRef(original.message_id, original.digest or ""), RecallReason.MISDIRECTED
        ),
        correlation=original.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=original.message_id,
    )
    gw.ledger.record([gw.outbox.sign(hostile)])
    pump(gw)
    refused = _copy(gw, "333", hostile.header.message_id)
    assert refused.status == Status.QUARANTINED
    assert "recall.not-the-sender" in (refused.reason or "")
    assert _copy(gw, "333", original.message_id).status == Status.VERIFIED  # untouched
    item = _receipt_item_for(gw, "333", hostile.header.message_id)
    assert item.outcome.value == "REJECTED" and item.action is None
    [at_hostile] = gw.ledger.find(message_id=hostile.header.message_id, authority="336")
    assert at_hostile.status == Status.REJECTED


def test_a_recall_naming_another_digest_is_refused(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "333")
    wrong = new_envelope(
        gw.clock,
        sender="332",
        recipient="333",
        body=Recall(MessageRef(original.message_id, "0" * 64), RecallReason.OTHER),
        correlation=original.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=original.message_id,
    )
    gw.ledger.record([gw.outbox.sign(wrong)])
    pump(gw)
    refused = _copy(gw, "333", wrong.header.message_id)
    assert refused.status == Status.QUARANTINED
    assert "recall.digest-mismatch" in (refused.reason or "")
    assert _copy(gw, "333", original.message_id).status == Status.VERIFIED


def test_a_correction_supersedes_the_original_and_is_handed_over(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    to_333 = _sent(gw, "332", "333")
    to_336 = _sent(gw, "332", "336")
    assert gw.ledger.acknowledge_local("336", to_336.message_id)
    fixes = []
    for original in (to_333, to_336):
        env = envelope_of(gw, original)
        assert env is not None and isinstance(env.body, Assessment)
        fixes.append(
            sender.correct(
                gw, "332", original.message_id, replace(env.body, needs="GP review"), "needs", "Jo"
            )
        )
    pump(gw)
    # 333 never had the original: it is withdrawn, the corrected record takes its place.
    assert _copy(gw, "333", to_333.message_id).status == Status.WITHDRAWN
    inbox_333 = {i.message_id for i in gw.ledger.inbox("333")}
    assert fixes[0].message_id in inbox_333 and to_333.message_id not in inbox_333
    assert _receipt_item_for(gw, "333", fixes[0].message_id or "").action == ActionTaken.WITHDRAWN
    # 336 had it: noted superseded, the correction handed over, the date in the receipt.
    superseded = _copy(gw, "336", to_336.message_id)
    assert any(h.status == Status.SUPERSEDED for h in superseded.history)
    assert fixes[1].message_id in {i.message_id for i in gw.ledger.inbox("336")}
    item = _receipt_item_for(gw, "336", fixes[1].message_id or "")
    assert item.action == ActionTaken.PASSED_ON and item.handed_over_at is not None
    corrected = _copy(gw, "336", fixes[1].message_id or "")
    assert corrected.case_ref == to_336.case_ref  # the copy is on the case it corrects
    assert audit.verify(gw.ledger) == []


def test_a_recall_follows_a_copy_the_recipient_forwarded(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "333")
    env = envelope_of(gw, original)
    assert env is not None and isinstance(env.body, Assessment)
    assert gw.ledger.acknowledge_local("333", original.message_id)
    # Sandwell sends the same record on to Walsall (334), on a thread of its own.
    forward = new_envelope(
        gw.clock,
        sender="333",
        recipient="334",
        body=env.body,
        correlation=correlation_id("333", "SAN-FWD-1"),
        legal_basis=LegalBasis.CONSENT,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(forward)])
    pump(gw)
    assert _copy(gw, "334", forward.header.message_id).status == Status.VERIFIED
    done = sender.recall(gw, "332", original.message_id, RecallReason.NO_BASIS, None, "Jo")
    pump(gw)
    item = _receipt_item_for(gw, "333", done.message_id or "")
    assert item.action == ActionTaken.PASSED_ON
    assert "forwarded to 334" in (item.reason or "")
    # Walsall got Sandwell's own recall, naming the one it follows, and withdrew its copy.
    assert _copy(gw, "334", forward.header.message_id).status == Status.WITHDRAWN
    followed = [
        r
        for r in gw.ledger.find(authority="334", direction=Direction.INBOUND, limit=500)
        if r.message_type == "Recall"
    ]
    assert len(followed) == 1 and followed[0].sender == "333"
    body = envelope_of(gw, followed[0])
    assert body is not None and isinstance(body.body, Recall)
    assert body.body.follows is not None and body.body.follows.message_id == done.message_id
    with gw.ledger.transaction() as conn:
        [onward] = outcomes.outcomes_of(conn, "333", forward.header.message_id)
    assert onward.action == ActionTaken.WITHDRAWN.value
    # Walsall's proof comes back to Dudley: Sandwell receipts Dudley's recall again.
    got = _outcome(gw, original.message_id)
    assert got.action == ActionTaken.PASSED_ON.value
    assert "at 334: withdrawn before its local system had it" in (got.outcome_reason or "")


# A SHA-256 digest, or a message id (UUID).
HEX_IDS = r"[0-9a-f]{64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_every_local_format_gets_a_rendering_of_recall_correction_and_erasure_notices(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "336")
    env = envelope_of(gw, original)
    assert env is not None and isinstance(env.body, Assessment)
    assert gw.ledger.acknowledge_local("336", original.message_id)
    fix = sender.correct(
        gw, "332", original.message_id, replace(env.body, needs="GP review"), "needs", "Jo"
    )
    pump(gw)
    assert gw.ledger.acknowledge_local("336", fix.message_id or "")
    recall = sender.recall(gw, "332", fix.message_id or "", RecallReason.WRONG_CONTENT, "=1+1")
    pump(gw)
    notices = {
        kind: _copy(gw, "336", sent.message_id or "")
        for kind, sent in (("Correction", fix), ("Recall", recall))
    }
    assert len(gw.adapters.by_name) >= 3, "the adapters are loaded"
    kinds = set()
    for name, adapter in gw.adapters.by_name.items():
        kinds.add(local_format.media_type(adapter))
        for kind, row in notices.items():
            data = gw.ledger.body_of("336", Direction.INBOUND, row.message_id)
            assert data is not None
            form = local_format.render(gw, adapter, kind, data)
            assert form.local, (name, kind, form.note)
            # The note names the sender, never the recipient (digests and message ids,
            # random hex, may hold any digits: "e6b13367-..." failed CI once).
            assert form.note and "336" not in re.sub(HEX_IDS, "", form.note)
            if kind == "Recall":
                assert fix.message_id in form.content, (name, form.content)
                if form.content_type.startswith("text/csv"):
                    assert "'=1+1" in form.content, name  # a spreadsheet reads text, no formula
            else:
                assert original.message_id in (form.note or ""), name
                assert "GP review" in form.content, name
    assert kinds == {"text/csv", "application/json", "application/xml"}


def test_a_recall_through_an_escalation_queue_is_refused(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "332", "333")
    env = new_envelope(
        gw.clock,
        sender="332",
        recipient="333",
        body=Recall(MessageRef(original.message_id, original.digest or ""), RecallReason.OTHER),
        correlation=original.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    got = Received("regional", Route.ESCALATION, env, "0" * 64, b"")
    with gw.ledger.transaction() as conn, pytest.raises(PolicyRefusal, match="not-through-an"):
        receiver.on_recall(ApplyContext(conn, gw.clock(), gw), got)
