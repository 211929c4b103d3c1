"""The sender's side of recall and correction: what may be recalled, what is sent, the
outcome per recipient, correction chains, and "not ours" recalling automatically."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from policy_support import DUDLEY, envelope_of, pump, submit
from retention_support import Clock, dudley_shared, region
from sqlalchemy import update

from gateway.context import Gateway
from gateway.crossborder.consent_store import consent_register
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.handoff import Claimed
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import not_ours, outcomes, sender
from gateway.model import (
    ActionTaken,
    Assessment,
    Audience,
    Correction,
    Detail,
    Envelope,
    LegalBasis,
    Notification,
    NotificationType,
    Recall,
    RecallReason,
    Receipt,
    ReceiptItem,
    ReceiptOutcome,
)
from gateway.outbox import new_envelope
from gateway.services import delivery

pytestmark = pytest.mark.timeout(120)


def _sent(gw: Gateway, recipient: str, message_type: str = "Assessment") -> MessageRecord:
    return next(
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=200)
        if r.recipient == recipient and r.message_type == message_type
    )


def _shared_with_336(tmp_path: Path) -> tuple[Gateway, MessageRecord, Envelope]:
    """A region where Dudley shared its record; its Assessment to 336, and as sent."""
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "336")
    env = envelope_of(gw, original)
    assert env is not None and isinstance(env.body, Assessment)
    return gw, original, env


def _outcomes(gw: Gateway, original: str) -> list[outcomes.RecallOutcome]:
    with gw.ledger.transaction() as conn:
        return outcomes.outcomes_of(conn, "332", original)


def test_a_recall_goes_to_the_recipient_and_its_receipt_is_the_outcome(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "333")
    done = sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, None, "Jo")
    assert done.status == Status.SIGNED and done.recipient == "333"
    pump(gw)
    received = gw.ledger.find(message_id=done.message_id, authority="333")
    assert received and received[0].direction == Direction.INBOUND
    env = envelope_of(gw, received[0])
    assert env is not None and isinstance(env.body, Recall)
    assert env.body.original.digest == original.digest
    assert env.header.legal_basis == LegalBasis.NO_PERSONAL_DATA
    [outcome] = _outcomes(gw, original.message_id)
    assert outcome.outcome == "DELIVERED" and outcome.recipient == "333"
    notes = [h for h in _sent(gw, "333").history if h.status == Status.RECALLED]
    assert len(notes) == 2 and "recall outcome at 333" in (notes[-1].reason or "")
    assert audit.verify(gw.ledger) == []


def test_a_message_still_queued_is_withdrawn_without_telling_anyone(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), "x.csv")
    queued = _sent(gw, "336")
    assert queued.status == Status.SIGNED
    done = sender.recall(gw, "332", queued.message_id, RecallReason.WRONG_CHILD, None, "Jo")
    assert done.status == Status.WITHDRAWN and done.message_id is None
    pump(gw)
    assert _sent(gw, "336").status == Status.WITHDRAWN
    assert gw.ledger.find(message_id=queued.message_id, authority="336") == []


def test_a_message_being_published_is_recalled_from_its_recipient_not_withdrawn(
    tmp_path: Path,
) -> None:
    # The sender loop has claimed it and read its body: it may be on the wire now. Shown
    # "withdrawn before it was sent", it was delivered all the same (a review found it).
    gw = region(tmp_path, Clock.starting_now())
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), "x.csv")
    row = _sent(gw, "336")
    assert row.status == Status.SIGNED
    now = gw.clock()
    lease = delivery.outbox_lease(gw)
    claimed = gw.ledger.claim_outbox(500, gw.hosted, now, now + lease)
    assert row.pk in {i.pk for i in claimed}

    done = sender.recall(gw, "332", row.message_id, RecallReason.WRONG_CHILD, None, "Jo")
    assert done.status == Status.SIGNED and done.message_id != row.message_id  # a Recall

    delivery._publish(gw, [Claimed(tuple(claimed), now + lease)], now, lease, wake=False)
    pump(gw)
    assert gw.ledger.find(message_id=row.message_id, authority="336")  # it went out
    assert _sent(gw, "336").status == Status.DELIVERED
    recall_there = gw.ledger.find(message_id=done.message_id, authority="336")
    assert recall_there and recall_there[0].direction == Direction.INBOUND
    [outcome] = _outcomes(gw, row.message_id)
    assert outcome.outcome == "DELIVERED" and outcome.recipient == "336"


def test_only_the_sender_may_recall_and_only_once(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "336")
    with pytest.raises(NotFoundError):
        sender.recall(gw, "336", original.message_id, RecallReason.OTHER)
    receipt = next(
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=200)
        if r.message_type == "Receipt"
    )
    with pytest.raises(PolicyRefusal, match=r"recall\.not-recallable"):
        sender.recall(gw, "332", receipt.message_id, RecallReason.OTHER)
    sent = sender.recall(gw, "332", original.message_id, RecallReason.OTHER, actor="Jo Bloggs")
    # The second asker learns who asked first and when, and nothing is sent again.
    with pytest.raises(
        PolicyRefusal,
        match=rf"recall\.already-recalled.*\(recall {sent.message_id}, asked for by Jo Bloggs at ",
    ):
        sender.recall(gw, "332", original.message_id, RecallReason.OTHER, actor="Sam")


def test_corrections_chain_each_superseding_the_latest_version(tmp_path: Path) -> None:
    gw, original, env = _shared_with_336(tmp_path)
    first = sender.correct(
        gw, "332", original.message_id, replace(env.body, needs="Asthma review"), "needs", "Jo"
    )
    second = sender.correct(
        gw, "332", original.message_id, replace(env.body, needs="GP review"), "again", "Jo"
    )
    assert first.original_id == original.message_id
    assert second.original_id == first.message_id  # the chain: the latest version
    pump(gw)
    assert second.message_id is not None
    [latest] = gw.ledger.find(message_id=second.message_id, authority="336")
    got = envelope_of(gw, latest)
    assert got is not None and isinstance(got.body, Correction)
    assert got.body.original.message_id == first.message_id
    assert isinstance(got.body.replacement, Assessment)
    assert got.body.replacement.needs == "GP review"
    assert got.header.legal_basis == LegalBasis.CONSENT and got.header.consent_ref
    disclosed = {
        e.event.message_id for e in audit.entries(gw.ledger) if e.event.action == "DISCLOSURE"
    }
    assert {first.message_id, second.message_id} <= disclosed
    assert audit.verify(gw.ledger) == []
    assert [o.kind for o in _outcomes(gw, first.message_id)] == ["CORRECTION"]


def test_a_correction_is_refused_when_consent_no_longer_covers_the_recipient(
    tmp_path: Path,
) -> None:
    gw, original, env = _shared_with_336(tmp_path)
    with gw.ledger.transaction() as conn:
        conn.execute(update(consent_register).values(given=False, action="WITHDRAWN"))
    with pytest.raises(PolicyRefusal, match="consent"):
        sender.correct(gw, "332", original.message_id, env.body, "fix", "Jo")


def test_not_ours_at_the_recipient_recalls_the_message_at_its_sender(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "333")
    done = not_ours.not_ours(gw, "333", original.message_id, "Sandwell coordinator")
    assert done.sender == "332"
    pump(gw)
    [outcome] = _outcomes(gw, original.message_id)
    assert outcome.kind == "RECALL" and outcome.reason == RecallReason.MISDIRECTED.value
    assert outcome.actor == "not ours (333)"
    [recall] = gw.ledger.find(message_id=outcome.message_id or "", authority="333")
    assert recall.message_type == "Recall"


def test_saying_not_ours_again_after_the_recall_sends_nothing_and_names_the_first_notice(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    original = _sent(gw, "333")
    first = not_ours.not_ours(gw, "333", original.message_id, "Sandwell coordinator")
    pump(gw)
    again = not_ours.not_ours(gw, "333", original.message_id, "Sandwell duty manager")
    pump(gw)
    assert again.already_said and not again.withdrawn
    assert (again.notice_id, again.by) == (first.notice_id, "Sandwell coordinator")
    notices = [
        r
        for r in gw.ledger.find(authority="333", direction=Direction.OUTBOUND, limit=2000)
        if r.message_type == "Notification" and r.recipient == "332"
    ]
    assert [r.message_id for r in notices] == [first.notice_id]
    assert [o.reason for o in _outcomes(gw, original.message_id)] == ["MISDIRECTED"]


def test_a_not_ours_notice_about_a_message_sent_to_someone_else_is_quarantined(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    to_wolverhampton = _sent(gw, "336")
    forged = new_envelope(
        gw.clock,
        sender="333",
        recipient="332",
        body=Notification(
            NotificationType.MISDIRECTED,
            None,
            "Not ours",
            Audience.PROFESSIONAL,
            details=(Detail("digest", to_wolverhampton.digest or ""),),
        ),
        correlation=to_wolverhampton.correlation_id,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=to_wolverhampton.message_id,
    )
    gw.ledger.record([gw.outbox.sign(forged)])
    pump(gw)
    [got] = gw.ledger.find(message_id=forged.header.message_id, authority="332")
    assert got.status == Status.QUARANTINED
    assert "recall.not-ours-from-another-authority" in (got.reason or "")
    assert _outcomes(gw, to_wolverhampton.message_id) == []


def test_a_queued_correction_can_be_recalled_and_the_original_corrected_again(
    tmp_path: Path,
) -> None:
    gw, original, env = _shared_with_336(tmp_path)
    wrong = sender.correct(
        gw, "332", original.message_id, replace(env.body, needs="typo"), "needs", "Jo"
    )
    assert wrong.message_id is not None
    done = sender.recall(gw, "332", wrong.message_id, RecallReason.WRONG_CONTENT, None, "Jo")
    assert done.status == Status.WITHDRAWN and done.message_id is None
    [row] = _outcomes(gw, original.message_id)
    assert row.kind == "CORRECTION" and row.status == Status.WITHDRAWN.value
    assert row.outcome_reason == "withdrawn from the outbox before it was sent"
    right = sender.correct(
        gw, "332", original.message_id, replace(env.body, needs="GP review"), "needs", "Jo"
    )
    assert right.original_id == original.message_id  # the withdrawn one superseded nothing
    pump(gw)
    assert gw.ledger.find(message_id=wrong.message_id, authority="336") == []
    [got] = gw.ledger.find(message_id=right.message_id or "", authority="336")
    body = envelope_of(gw, got)
    assert body is not None and isinstance(body.body, Correction)
    assert body.body.original.message_id == original.message_id


def test_a_correction_of_a_plan_action_is_accepted_and_the_chain_goes_on(
    tmp_path: Path,
) -> None:
    gw, original, env = _shared_with_336(tmp_path)
    assert env.body.actions, "fixture has plan actions"
    a0 = env.body.actions[0]
    typo = replace(
        env.body, actions=(replace(a0, description=a0.description + "."), *env.body.actions[1:])
    )
    first = sender.correct(gw, "332", original.message_id, typo, "typo in an action", "Jo")
    pump(gw)
    [r1] = gw.ledger.find(message_id=first.message_id, authority="336", direction=Direction.INBOUND)
    assert r1.status != Status.QUARANTINED, r1.reason
    assert any(h.status == Status.SUPERSEDED for h in _sent(gw, "336").history)
    # A plain correction (needs only) of the ORIGINAL record:
    try:
        second = sender.correct(
            gw, "332", original.message_id, replace(env.body, needs="GP review"), "needs", "Jo"
        )
    except PolicyRefusal as stuck:
        pytest.fail(f"the original can no longer be corrected: {stuck}")
    pump(gw)
    [r2] = gw.ledger.find(
        message_id=second.message_id, authority="336", direction=Direction.INBOUND
    )
    assert second.original_id == first.message_id
    assert r2.status != Status.QUARANTINED, r2.reason


def test_a_correction_onto_another_case_or_of_another_kind_is_refused_before_sending(
    tmp_path: Path,
) -> None:
    # The recipient's gateway would quarantine it (correction.same-record): said at once.
    gw, original, env = _shared_with_336(tmp_path)
    with pytest.raises(PolicyRefusal, match="a correction stays on its case"):
        sender.correct(
            gw, "332", original.message_id, replace(env.body, case_ref="OTHER-1"), "case", "Jo"
        )
    notice = Notification(NotificationType.SERVICE_GAP, env.body.case_ref, "a gap")
    with pytest.raises(PolicyRefusal, match="not a Notification"):
        sender.correct(gw, "332", original.message_id, notice, "kind", "Jo")


def test_a_recall_that_stood_keeps_its_withdrawal_when_the_earlier_receipt_comes_last(
    tmp_path: Path,
) -> None:
    # 336 receipted the recall NOT_HELD while it stood there, then WITHDRAWN once the
    # original came; the first receipt, delayed, arrives last: it undoes nothing.
    gw, original, _ = _shared_with_336(tmp_path)
    recall = sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, actor="Jo")
    [sent] = gw.ledger.find(message_id=recall.message_id, authority="332")
    digest = sent.digest or ""
    withdrawn = ReceiptItem(
        recall.message_id, digest, ReceiptOutcome.ACCEPTED, "came", ActionTaken.WITHDRAWN
    )
    stands = ReceiptItem(
        recall.message_id, digest, ReceiptOutcome.ACCEPTED, "stands", ActionTaken.NOT_HELD
    )
    with gw.ledger.transaction() as conn:
        assert outcomes.apply_receipt(conn, "332", "336", "r-2", Receipt((withdrawn,)), gw.clock())
        assert not outcomes.apply_receipt(conn, "332", "336", "r-1", Receipt((stands,)), gw.clock())
    [outcome] = _outcomes(gw, original.message_id)
    assert outcome.action == ActionTaken.WITHDRAWN.value


def test_a_recall_its_recipient_refused_lets_a_person_recall_again(tmp_path: Path) -> None:
    # 336 refused the recall (it came before the original there and waited in vain,
    # say): it did nothing, so a person may recall again, once. A recall not yet
    # answered still stops a second, and the gateway's own recalls (a "not ours"
    # notice, a recall passed on) never go again on a peer's refusal.
    gw, original, _ = _shared_with_336(tmp_path)
    first = sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, actor="Jo")
    with pytest.raises(PolicyRefusal, match=r"recall\.already-recalled"):
        sender.recall(gw, "332", original.message_id, RecallReason.OTHER, actor="Sam", again=True)
    [sent] = gw.ledger.find(message_id=first.message_id, authority="332")
    refused = ReceiptItem(first.message_id, sent.digest or "", ReceiptOutcome.REJECTED, "waited")
    with gw.ledger.transaction() as conn:
        assert outcomes.apply_receipt(conn, "332", "336", "r-1", Receipt((refused,)), gw.clock())
    # Said as a refusal, with 336's reason, on the original and in the outcome.
    said = "refused; the original stands there as it was (waited)"
    [noted] = gw.ledger.find(message_id=original.message_id, authority="332")
    assert (noted.history[-1].reason or "").endswith(f"recall outcome at 336: {said}")
    [outcome] = _outcomes(gw, original.message_id)
    assert outcome.describe() == f"REJECTED: at 336, {said}"
    with pytest.raises(PolicyRefusal, match=r"recall\.already-recalled"):
        sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, actor="not ours")
    second = sender.recall(
        gw, "332", original.message_id, RecallReason.MISDIRECTED, actor="Sam", again=True
    )
    assert second.message_id not in (None, first.message_id)
    assert second.status == Status.SIGNED and second.recipient == "336"
    with pytest.raises(
        PolicyRefusal, match=rf"recall\.already-recalled.*recall {second.message_id}"
    ):
        sender.recall(gw, "332", original.message_id, RecallReason.OTHER, actor="Al", again=True)
