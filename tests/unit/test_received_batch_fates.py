"""What one message of a received batch decides for the others in it.

A batch is recorded in runs (``pipeline._runs``) and judged message by message;
the fate of one message must not decide another's except where the rules say so
(the same record received twice, an original before its recall). Found by a
fresh-eyes review of the receiving path (2026-12-06).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.clock import Clock
from support.gateways import memory_gateway
from support.received import assessments, recall_of

from gateway.connectors import state
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import LedgerError, PolicyRefusal
from gateway.feature import ApplyContext, ReceiptNote, Received
from gateway.ledger import audit
from gateway.ledger.records import CODE_WIDTH, MESSAGE_ID_WIDTH, MessageRecord
from gateway.ledger.status import Direction, Route, Status
from gateway.ledger.tables import messages
from gateway.lifecycle import receiver, standing
from gateway.model import (
    ActionTaken,
    Correction,
    Envelope,
    MessageRef,
    MessageType,
)
from gateway.services import dead_letters
from gateway.services.receiving import handle_batch, pipeline
from gateway.services.receiving.checks import Refused, Source, source_of
from gateway.transport.base import Delivery, Disposition, Verdict, routing_key
from gateway.transport.provenance import publishers_for
from gateway.transport.retry import ATTEMPT_HEADER


def _with_assessment_applier(
    gw: Gateway, applier: Callable[[ApplyContext, Received], None]
) -> Gateway:
    appliers = dict(gw.appliers)
    appliers[MessageType.ASSESSMENT] = (*appliers.get(MessageType.ASSESSMENT, ()), applier)
    return replace(gw, appliers=appliers)


def _inbound(gw: Gateway) -> dict[str, MessageRecord]:
    return {r.message_id: r for r in gw.ledger.find(authority="336", direction=Direction.INBOUND)}


def test_a_copy_refused_by_policy_leaves_a_later_copy_of_its_record_in_the_batch_to_be_applied(
    tmp_path: Path,
) -> None:
    # The sender fixed what was refused (a header's consent, say) and sent the same
    # record again under a new id; a backlog puts both copies in one batch.
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, second = assessments(gw, gw, ["DUD-1", "DUD-1"])
    applied: list[str] = []

    def refuse_the_first(_ctx: ApplyContext, received: Received) -> None:
        if received.message_id == first.message_id:
            raise PolicyRefusal("test-rule", "the first copy is refused")
        applied.append(received.message_id)

    gw = _with_assessment_applier(gw, refuse_the_first)
    assert [d.verdict for d in handle_batch(gw, [first, second])] == [Verdict.ACK, Verdict.ACK]
    rows = _inbound(gw)
    assert rows[first.message_id].status is Status.QUARANTINED
    # Judged on its own, as it is when the copies come in two batches.
    assert applied == [second.message_id]
    assert rows[second.message_id].status is not Status.DUPLICATE


def test_a_copy_accepted_still_makes_a_later_copy_in_the_batch_a_duplicate(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, second = assessments(gw, gw, ["DUD-1", "DUD-1"])
    applied: list[str] = []
    gw = _with_assessment_applier(gw, lambda _ctx, received: applied.append(received.message_id))
    assert [d.verdict for d in handle_batch(gw, [first, second])] == [Verdict.ACK, Verdict.ACK]
    assert applied == [first.message_id]
    assert _inbound(gw)[second.message_id].status is Status.DUPLICATE


def _both_retried(gw: Gateway, out: list[Disposition]) -> None:
    """The original and its recall both to be retried, the recall with its original:
    not judged without it, nothing recorded, so nothing refused for good."""
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.RETRY]
    assert "retried with it" in (out[1].reason or "")
    assert _inbound(gw) == {}


def _both_recorded_once_handed_over_again(
    gw: Gateway, original: Delivery, recall: Delivery
) -> None:
    """The original and its recall, handed over again once nothing fails: the recall
    is judged with its original, which it withdraws."""
    assert [d.verdict for d in handle_batch(gw, [original, recall])] == [Verdict.ACK, Verdict.ACK]
    rows = _inbound(gw)
    assert rows[recall.message_id].status is not Status.QUARANTINED
    assert rows[original.message_id].status is Status.WITHDRAWN


def test_a_correction_behind_an_original_that_is_to_be_retried_is_retried_with_it(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = _correction_of(gw, original)
    failing = True

    def ledger_fails_once(_ctx: ApplyContext, received: Received) -> None:
        if failing and received.message_id == original.message_id:
            raise LedgerError("the ledger failed (a lock, a deadlock)")

    gw = _with_assessment_applier(gw, ledger_fails_once)
    _both_retried(gw, handle_batch(gw, [original, recall]))

    failing = False  # the broker hands both over again
    _both_recorded_once_handed_over_again(gw, original, recall)


def test_a_recall_behind_an_original_that_is_to_be_retried_stands_and_withdraws_its_retry(
    tmp_path: Path,
) -> None:
    # Held back with its original, the recall could come back after the original's
    # retry, which would then be handed over first (found by a review): it stands.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = recall_of(gw, original)
    failing = True

    def ledger_fails_once(_ctx: ApplyContext, received: Received) -> None:
        if failing and received.message_id == original.message_id:
            raise LedgerError("the ledger failed (a lock, a deadlock)")

    gw = _with_assessment_applier(gw, ledger_fails_once)
    out = handle_batch(gw, [original, recall])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.ACK]
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.NOT_HELD
    failing = False  # the original's retry, alone
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.WITHDRAWN


def test_a_correction_withdrawn_on_arrival_says_it_was_refused_not_its_original(
    tmp_path: Path,
) -> None:
    # 332 recalls its correction before it comes. The correction's own receipt item is
    # read by 332 as what was done about the original it corrects, which stands here as
    # it was: it says the correction was refused (found by a review: it said WITHDRAWN).
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    correction = _correction_of(gw, original)
    recall = recall_of(gw, correction)
    assert [d.verdict for d in handle_batch(gw, [recall])] == [Verdict.ACK]
    assert [d.verdict for d in handle_batch(gw, [correction])] == [Verdict.ACK]
    rows = _inbound(gw)
    assert rows[correction.message_id].status is Status.WITHDRAWN
    assert rows[original.message_id].status is Status.VERIFIED  # stands as it was
    said = _notes(gw, correction)[correction.message_id]
    assert said.action is ActionTaken.REFUSED and "stands as it was" in (said.reason or "")


def _with_sender(delivery: Delivery, sender: bytes) -> Delivery:
    body = delivery.body.replace(b"<Sender>332</Sender>", b"<Sender>" + sender + b"</Sender>", 1)
    assert body != delivery.body  # the signature no longer verifies: quarantined unverified
    return replace(delivery, body=body)


def test_a_repeat_of_a_quarantined_message_with_an_overlong_sender_fails_no_batch(
    tmp_path: Path,
) -> None:
    # Any member may publish such bytes to another's inbox, as often as it likes.
    gw = memory_gateway(tmp_path, ("332", "336"))
    forged_source, good = assessments(gw, gw, ["DUD-1", "DUD-2"])
    forged = _with_sender(forged_source, b"X" * (CODE_WIDTH + 4))
    assert [d.verdict for d in handle_batch(gw, [forged])] == [Verdict.ACK]
    out = handle_batch(gw, [forged, good])
    assert [d.verdict for d in out] == [Verdict.ACK, Verdict.ACK], [d.reason for d in out]
    rows = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    quarantined = [r for r in rows if r.status is Status.QUARANTINED]
    assert len(quarantined) == 1
    assert Status.DUPLICATE in [h.status for h in quarantined[0].history]
    assert any(r.message_id == good.message_id for r in rows)


def test_a_refusal_keeps_the_sender_and_id_as_the_ledger_stores_them() -> None:
    refused = Refused(
        Source("336", Route.INBOX), "signature: bad", "S" * 40, "m" * 100, "Assessment", "d", False
    )
    assert (refused.sender, refused.message_id) == ("S" * CODE_WIDTH, "m" * MESSAGE_ID_WIDTH)


def _the_same_record_for_332(gw: Gateway, delivery: Delivery) -> Delivery:
    """``delivery``'s record from 336 to 332: another source of the batch (332's inbox)."""
    env = element_to_envelope(xmlsafe.parse(delivery.body, max_bytes=1_000_000, max_depth=64))
    header = replace(env.header, sender="336", recipient="332", message_id=str(uuid.uuid4()))
    signed = gw.outbox.sign(Envelope(header, env.body))
    assert signed.body is not None
    user = sorted(publishers_for(gw.settings.broker, "336"))[0]
    return Delivery(
        gw.topology.inbox("332"),
        routing_key("332", "Assessment", "336"),
        signed.body,
        signed.message_id,
        {},
        0,
        delivery.tag + 10,
        user,
    )


def test_a_poison_message_of_another_source_leaves_a_committed_one_as_it_was(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, seed = assessments(gw, gw, ["DUD-1", "DUD-2"])
    poison = _the_same_record_for_332(gw, seed)

    def cannot_take(_ctx: ApplyContext, received: Received) -> None:
        if received.message_id == poison.message_id:
            raise KeyError("an applier cannot take this one")

    gw = _with_assessment_applier(gw, cannot_take)
    out = handle_batch(gw, [first, poison])
    assert [d.verdict for d in out] == [Verdict.ACK, Verdict.RETRY]
    row = _inbound(gw)[first.message_id]
    # Delivered once by the broker: not taken for a re-send of itself.
    assert Status.DUPLICATE not in [h.status for h in row.history]
    receipts = gw.ledger.find(authority="336", direction=Direction.OUTBOUND)
    assert all(Status.RETRYING not in [h.status for h in r.history] for r in receipts)


def test_a_re_send_queues_its_receipt_again_in_the_transaction_that_notes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Queued after the commit, a failure turned a recorded batch into RETRY and
    # skipped its follow-ups; in the transaction, the two stand or fall together.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (first,) = assessments(gw, gw, ["DUD-1"])
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    (receipt,) = gw.ledger.find(authority="336", direction=Direction.OUTBOUND)
    assert receipt.status is Status.SENT

    def ledger_fails(*_args: object) -> list[int]:
        raise LedgerError("the ledger failed")

    with monkeypatch.context() as patched:
        patched.setattr(gw.ledger, "send_again", ledger_fails)
        assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.RETRY]
    row = _inbound(gw)[first.message_id]
    assert Status.DUPLICATE not in [h.status for h in row.history]  # rolled back with it

    # The sender got no receipt and sends the same bytes again: the original receipt.
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    row = _inbound(gw)[first.message_id]
    assert Status.DUPLICATE in [h.status for h in row.history]
    (receipt,) = gw.ledger.find(authority="336", direction=Direction.OUTBOUND)
    assert receipt.status is Status.RETRYING


def _sent_again_after(
    tmp_path: Path, *moves: tuple[Status, str]
) -> tuple[Gateway, Delivery, MessageRecord]:
    """Dudley's record received, its row moved through ``moves``, then the same record
    again under a new id: the gateway, the first copy, and the second copy's row."""
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, again = assessments(gw, gw, ["DUD-1", "DUD-1"])
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    row = _inbound(gw)[first.message_id]
    for status, reason in moves:
        gw.ledger.transition([row.pk], status, reason)
    assert [d.verdict for d in handle_batch(gw, [again])] == [Verdict.ACK]
    return gw, first, _inbound(gw)[again.message_id]


def test_a_record_sent_again_after_it_was_undeliverable_is_handed_over(tmp_path: Path) -> None:
    # The local system never took the first copy and the sender was told so; the copy
    # it sends again must reach the local system, not be taken for a duplicate.
    gw, _first, again = _sent_again_after(
        tmp_path, (Status.UNDELIVERABLE, "local system did not acknowledge")
    )
    assert again.status is not Status.DUPLICATE
    # Once a copy counts again, a third is the duplicate of that one.
    (third,) = assessments(gw, gw, ["DUD-1"], first_tag=2)
    assert [d.verdict for d in handle_batch(gw, [third])] == [Verdict.ACK]
    duplicate = _inbound(gw)[third.message_id]
    assert duplicate.status is Status.DUPLICATE
    assert again.message_id in (duplicate.history[-1].reason or "")


def test_a_record_withdrawn_before_handover_is_handed_over_when_sent_again(
    tmp_path: Path,
) -> None:
    _gw, _first, again = _sent_again_after(tmp_path, (Status.WITHDRAWN, "recalled by the sender"))
    assert again.status is not Status.DUPLICATE


def test_a_dead_lettered_record_sent_again_is_not_handed_over_twice_once_replayed(
    tmp_path: Path,
) -> None:
    # The local system refused it for now: an administrator may replay it, so it
    # counts (found by the review of the change above).
    gw, first, again = _sent_again_after(
        tmp_path, (Status.DEAD_LETTERED, "refused by the local system: 422")
    )
    assert again.status is Status.DUPLICATE
    dead_letters.replay(gw, "336", first.message_id or "", "admin")
    waiting = state.due(gw.ledger, "336", gw.clock() + timedelta(days=1), 10)
    assert [m.message_id for m in waiting] == [first.message_id]


def test_an_undeliverable_record_placed_with_the_local_system_still_counts(
    tmp_path: Path,
) -> None:
    # Placed (a drop file it may still read) but not acknowledged in time: the local
    # system may have it, so a copy sent again is not handed over a second time.
    _gw, _first, again = _sent_again_after(
        tmp_path,
        (Status.DELIVERED_LOCAL, "placed in the drop folder"),
        (Status.UNDELIVERABLE, "local system did not acknowledge"),
    )
    assert again.status is Status.DUPLICATE


@pytest.mark.parametrize("fails", ["checks", "batch"])
def test_a_correction_taken_one_by_one_behind_its_failing_original_is_retried_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    # Something unexpected fails the original wherever it is taken: the source's checks
    # (``_handle``) or the whole batch (``_isolated``); its messages are then taken one
    # by one. Its correction, taken alone after it, was judged without it and refused
    # for good (found by a review, 2026-12-06).
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = _correction_of(gw, original)
    failing = True
    real_check, real_handle = pipeline.check, pipeline._handle

    def check_fails_for_the_original(*args: Any, **kwargs: Any) -> Any:
        if failing and fails == "checks" and args[2].message_id == original.message_id:
            raise RuntimeError("a bug met by the original")
        return real_check(*args, **kwargs)

    def handle_fails_with_the_original(turn: Any, deliveries: Any, *rest: Any) -> Any:
        if failing and fails == "batch" and original in deliveries:
            raise RuntimeError("a bug met by the original")
        return real_handle(turn, deliveries, *rest)

    monkeypatch.setattr(pipeline, "check", check_fails_for_the_original)
    monkeypatch.setattr(pipeline, "_handle", handle_fails_with_the_original)
    _both_retried(gw, handle_batch(gw, [original, recall]))

    failing = False  # the broker hands both over again
    _both_recorded_once_handed_over_again(gw, original, recall)


def test_a_publisher_posing_with_another_senders_id_does_not_hold_back_that_senders_recall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 335 publishes, on its own key, a message that crashes the checks, under the id of
    # 332's original (recorded long ago); 332's recall of it comes in the same batch.
    gw = memory_gateway(tmp_path, ("332", "335", "336"))
    original, other = assessments(gw, gw, ["DUD-1", "DUD-2"])
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    recall = recall_of(gw, original)
    poison = replace(
        other,
        routing_key=routing_key("336", "Assessment", "335"),
        user_id=sorted(publishers_for(gw.settings.broker, "335"))[0],
        message_id=original.message_id,
        tag=99,
    )
    real_check = pipeline.check

    def crashes_on_the_poison(*args: Any, **kwargs: Any) -> Any:
        if args[2].tag == poison.tag:
            raise RuntimeError("a bug met by the poison")
        return real_check(*args, **kwargs)

    monkeypatch.setattr(pipeline, "check", crashes_on_the_poison)
    out = handle_batch(gw, [poison, recall])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.WITHDRAWN


def _on_try(delivery: Delivery, attempt: int) -> Delivery:
    """``delivery`` as the broker's relay hands it over again after ``attempt`` retries."""
    return replace(delivery, headers={ATTEMPT_HEADER: attempt})


def _correction_of(gw: Gateway, original: Delivery) -> Delivery:
    """332's correction of ``original`` (the same record, explained)."""
    env = element_to_envelope(xmlsafe.parse(original.body, max_bytes=1_000_000, max_depth=64))
    ref = MessageRef(env.header.message_id, hashlib.sha256(original.body).hexdigest())
    fixed = gw.outbox.sign(
        gw.outbox.envelope(
            sender="332",
            recipient="336",
            body=Correction(ref, "a typo", env.body),  # type: ignore[arg-type]
            correlation=env.header.correlation_id,
            legal_basis=env.header.legal_basis,
            purpose=env.header.purpose,
            consent_ref=env.header.consent_ref,
            in_reply_to=env.header.message_id,
        )
    )
    assert fixed.body is not None
    return replace(
        original,
        routing_key=routing_key("336", "Correction", "332"),
        body=fixed.body,
        message_id=fixed.message_id,
        tag=original.tag + 1,
    )


def test_a_correction_that_comes_before_its_original_waits_for_it(tmp_path: Path) -> None:
    # The original failed for a moment at the recipient and waits in a delay queue; the
    # correction, sent seconds after it, comes first. Judged then, it was refused for
    # good ("did not send") and the original, recorded a moment later, stayed.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    correction = _correction_of(gw, original)
    (out,) = handle_batch(gw, [correction])
    assert out.verdict is Verdict.RETRY
    assert original.message_id in (out.reason or "")
    assert _inbound(gw) == {}  # nothing recorded, nothing receipted: judged again later

    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    assert [d.verdict for d in handle_batch(gw, [_on_try(correction, 1)])] == [Verdict.ACK]
    rows = _inbound(gw)
    assert rows[original.message_id].status is Status.WITHDRAWN
    assert rows[correction.message_id].status is not Status.QUARANTINED


def _notes(gw: Gateway, *received: Delivery) -> dict[str, ReceiptNote]:
    """What the receipt items for ``received`` (332's, at 336) say was done."""
    keys = [("336", "332", d.message_id or "") for d in received]
    with gw.ledger.transaction() as conn:
        return {k[2]: note for k, note in receiver.receipt_notes(conn, keys).items()}


def _receipt_due(gw: Gateway, delivery: Delivery) -> bool:
    with gw.ledger.transaction() as conn:
        return bool(
            conn.execute(
                select(messages.c.receipt_due).where(
                    messages.c.authority == "336",
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.message_id == delivery.message_id,
                )
            ).scalar_one()
        )


def test_a_recall_that_comes_before_its_original_stands_and_withdraws_it_on_arrival(
    tmp_path: Path,
) -> None:
    # The original failed for a moment at the recipient and waits in a delay queue (or
    # was parked, to be replayed much later); the recall, sent after it, comes first.
    # Before, it was refused (or waited up to 12.6 minutes for it, and was refused if
    # it was parked), and the original was handed over although 332 had recalled it.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = recall_of(gw, original)
    (first,) = handle_batch(gw, [recall])
    assert first.verdict is Verdict.ACK  # no wait: it stands at once
    row = _inbound(gw)[recall.message_id]
    assert row.status is Status.WITHDRAWN  # accepted, nothing to tell the local system
    stands = _notes(gw, recall)[recall.message_id]
    assert stands.action is ActionTaken.NOT_HELD and stands.reason == receiver.STANDS

    judged: list[str] = []
    gw = _with_assessment_applier(gw, lambda _ctx, received: judged.append(received.message_id))
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    rows = _inbound(gw)
    assert rows[original.message_id].status is Status.WITHDRAWN  # never handed over
    assert rows[original.message_id].restricted  # as a recall after it would leave it
    assert "withdrawn on arrival" in (rows[original.message_id].reason or "")
    assert judged == []  # no applier ran: nothing a recalled record says takes effect
    said = _notes(gw, original)[original.message_id]  # its own receipt item says so
    assert said.action is ActionTaken.WITHDRAWN and "withdrawn on arrival" in (said.reason or "")
    assert _receipt_due(gw, recall)  # receipted again, saying what was done now
    done = _notes(gw, recall)[recall.message_id]
    assert done.action is ActionTaken.WITHDRAWN and done.reason == receiver.ON_ARRIVAL
    assert any(e.event.action == "RECALL_ON_ARRIVAL" for e in audit.entries(gw.ledger))


def test_a_standing_recall_withdraws_its_original_come_as_a_copy_of_an_earlier_record(
    tmp_path: Path,
) -> None:
    # The recalled message carries the same record as one received before (it would
    # be recorded DUPLICATE, never handed over): it is still the message recalled.
    gw = memory_gateway(tmp_path, ("332", "336"))
    earlier, recalled = assessments(gw, gw, ["DUD-1", "DUD-1"])
    assert [d.verdict for d in handle_batch(gw, [earlier])] == [Verdict.ACK]
    recall = recall_of(gw, recalled)
    (last,) = handle_batch(gw, [_on_try(recall, gw.settings.delivery.retry_budget)])
    assert last.verdict is Verdict.ACK
    assert [d.verdict for d in handle_batch(gw, [recalled])] == [Verdict.ACK]
    assert _inbound(gw)[recalled.message_id].status is Status.WITHDRAWN
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.WITHDRAWN


def test_only_a_few_recalls_of_one_message_stand_and_the_next_is_refused(
    tmp_path: Path,
) -> None:
    # A broken or hostile sender recalling one message again and again: a few stand,
    # more say nothing new and are refused as a recall whose original never came.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (never_sent,) = assessments(gw, gw, ["DUD-1"])
    budget = gw.settings.delivery.retry_budget
    recalls = [recall_of(gw, never_sent) for _ in range(standing.STANDING_MAX + 1)]
    for recall in recalls:
        assert [d.verdict for d in handle_batch(gw, [_on_try(recall, budget)])] == [Verdict.ACK]
    rows = _inbound(gw)
    assert [rows[r.message_id].status for r in recalls] == [Status.WITHDRAWN] * (
        standing.STANDING_MAX
    ) + [Status.QUARANTINED]
    assert [d.verdict for d in handle_batch(gw, [never_sent])] == [Verdict.ACK]
    notes = _notes(gw, *recalls[:-1])
    assert {n.action for n in notes.values()} == {ActionTaken.WITHDRAWN}


def test_a_recall_standing_in_a_batch_withdraws_its_original_later_in_that_batch(
    tmp_path: Path,
) -> None:
    # The original, published without an AMQP id, cannot be put ahead of its recall;
    # another record before both made the batch look for standing recalls before
    # this one stood (found by a review: the original was handed over).
    gw = memory_gateway(tmp_path, ("332", "336"))
    other, original = assessments(gw, gw, ["DUD-2", "DUD-1"])
    recall = _on_try(recall_of(gw, original), gw.settings.delivery.retry_budget)
    out = handle_batch(
        gw, [other, replace(recall, tag=8), replace(original, message_id=None, tag=9)]
    )
    assert [d.verdict for d in out] == [Verdict.ACK] * 3
    rows = _inbound(gw)
    assert rows[original.message_id].status is Status.WITHDRAWN
    assert rows[other.message_id].status is Status.VERIFIED


def test_a_recall_made_before_its_record_does_not_withdraw_it(tmp_path: Path) -> None:
    # An honest recall follows its original. 332 signs a record dated later than a
    # recall naming it, lets the recall stand, then sends the record: withdrawn, it
    # would hold 336's receipt for a record 336's staff never saw. It is judged as ever.
    # The gateway's clock (its outbox dates the recall) runs 30 s behind the time the
    # record is dated with (``assessments``: now), within the created-at window.
    clock = Clock(datetime.now(UTC) - timedelta(seconds=30))
    gw = memory_gateway(tmp_path, ("332", "336"), clock=clock)
    (later,) = assessments(gw, gw, ["DUD-1"])
    recall = recall_of(gw, later)
    (last,) = handle_batch(gw, [_on_try(recall, gw.settings.delivery.retry_budget)])
    assert last.verdict is Verdict.ACK
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.NOT_HELD
    assert [d.verdict for d in handle_batch(gw, [later])] == [Verdict.ACK]
    assert _inbound(gw)[later.message_id].status is Status.VERIFIED
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.NOT_HELD


def test_a_sender_with_many_recalls_standing_has_the_next_wait_as_a_correction_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An honest sender has a few recalls whose originals are on their way; one with
    # more (a broken or hostile one's) makes no more rows here: the next waits, and is
    # refused on its last try if its original never comes.
    monkeypatch.setattr(standing, "SENDER_STANDING_MAX", 2)
    gw = memory_gateway(tmp_path, ("332", "336"))
    never_sent = assessments(gw, gw, ["DUD-1", "DUD-2", "DUD-3"])
    out = [handle_batch(gw, [recall_of(gw, d)])[0].verdict for d in never_sent]
    assert out == [Verdict.ACK, Verdict.ACK, Verdict.RETRY]


def test_a_recall_is_recorded_under_the_lock_of_the_id_it_names(tmp_path: Path) -> None:
    # Replicas on PostgreSQL: one standing a recall, another recording its original at
    # the same moment, take turns on the original's id (an advisory lock), so the
    # second sees what the first committed: never a recall standing and its original
    # handed over, each missing the other.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = recall_of(gw, original)
    checked = pipeline.check(gw, source_of(gw, recall), recall)
    names = pipeline._lock_names("336", [checked], [None])
    assert f"inbound:336:{original.message_id}" in names
    assert (
        pipeline._lock_names(
            "336", [pipeline.check(gw, source_of(gw, original), original)], [None]
        )[0]
        == f"inbound:336:{original.message_id}"
    )


def test_a_standing_recall_takes_back_only_the_message_with_the_digest_it_names(
    tmp_path: Path,
) -> None:
    # 332's recall stands for its message's id and bytes. A message under that id with
    # other bytes is not the one recalled: it is judged as ever, and the recall still
    # stands for the one it names.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = recall_of(gw, original)
    (last,) = handle_batch(gw, [_on_try(recall, gw.settings.delivery.retry_budget)])
    assert last.verdict is Verdict.ACK
    other = replace(original, body=original.body.replace(b"DUD-1", b"DUD-2", 1))
    resigned = gw.outbox.sign(
        element_to_envelope(xmlsafe.parse(other.body, max_bytes=1_000_000, max_depth=64))
    )
    assert resigned.body is not None and resigned.message_id == original.message_id
    assert [d.verdict for d in handle_batch(gw, [replace(other, body=resigned.body)])] == [
        Verdict.ACK
    ]
    row = _inbound(gw)[original.message_id]
    assert row.status is Status.VERIFIED, row.reason  # for the local system, as ever
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.NOT_HELD


def test_a_correction_whose_original_never_came_is_refused_on_its_last_retry(
    tmp_path: Path,
) -> None:
    # A correction is judged against its original (same record, case and thread): it
    # cannot stand without it. It waits, and is refused on its last try.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (never_sent,) = assessments(gw, gw, ["DUD-1"])
    correction = _correction_of(gw, never_sent)
    budget = gw.settings.delivery.retry_budget
    (waits,) = handle_batch(gw, [_on_try(correction, budget - 1)])
    assert waits.verdict is Verdict.RETRY
    (last,) = handle_batch(gw, [_on_try(correction, budget)])
    assert last.verdict is Verdict.ACK
    row = _inbound(gw)[correction.message_id]
    assert row.status is Status.QUARANTINED
    assert f"not received after {budget} retries" in (row.reason or "")


def test_a_recall_of_an_id_another_senders_message_holds_is_refused_at_once(
    tmp_path: Path,
) -> None:
    # 335 names 332's message (recorded here): it is not 335's, and never will be (an
    # id names one message of an authority), so there is nothing to wait for.
    gw = memory_gateway(tmp_path, ("332", "335", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    theirs = recall_of(gw, original)
    env = element_to_envelope(xmlsafe.parse(theirs.body, max_bytes=1_000_000, max_depth=64))
    signed = gw.outbox.sign(Envelope(replace(env.header, sender="335"), env.body))
    assert signed.body is not None
    forged = replace(
        theirs,
        routing_key=routing_key("336", "Recall", "335"),
        user_id=sorted(publishers_for(gw.settings.broker, "335"))[0],
        body=signed.body,
    )
    assert [d.verdict for d in handle_batch(gw, [forged])] == [Verdict.ACK]
    rows = _inbound(gw)
    assert rows[forged.message_id].status is Status.QUARANTINED
    assert rows[original.message_id].status is not Status.WITHDRAWN


def test_a_correction_waiting_for_its_original_holds_back_no_later_run_of_its_batch(
    tmp_path: Path,
) -> None:
    # A waiting correction is not a failure: the messages after it in the batch (here
    # a recall of an original earlier in it, recorded in a run of its own) go ahead.
    gw = memory_gateway(tmp_path, ("332", "336"))
    not_here, original = assessments(gw, gw, ["DUD-1", "DUD-2"])
    early, recall = _correction_of(gw, not_here), recall_of(gw, original)
    out = handle_batch(gw, [early, original, replace(recall, tag=9)])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.ACK, Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.WITHDRAWN


@pytest.mark.parametrize("budget", [2, 8])
def test_a_correction_waits_through_the_retry_budget_of_the_authority_it_was_sent_to(
    tmp_path: Path, budget: int
) -> None:
    # The broker retries by the receiving authority's own budget: waiting by another
    # would park the correction on its last try, unanswered, or refuse it with retries
    # left.
    gw = memory_gateway(
        tmp_path, ("332", "336"), authority_delivery={"336": {"retry_budget": budget}}
    )
    assert gw.settings.delivery.retry_budget == 5
    (never_sent,) = assessments(gw, gw, ["DUD-1"])
    correction = _correction_of(gw, never_sent)
    (waits,) = handle_batch(gw, [_on_try(correction, budget - 1)])
    assert waits.verdict is Verdict.RETRY
    (last,) = handle_batch(gw, [_on_try(correction, budget)])
    assert last.verdict is Verdict.ACK
    assert _inbound(gw)[correction.message_id].status is Status.QUARANTINED


def test_a_recall_ahead_of_its_original_in_one_batch_withdraws_it_whatever_else_fails(
    tmp_path: Path,
) -> None:
    # The original's retry comes back behind the recall that waits for it: both are
    # handed over in one batch, the recall first and on its last try, with another
    # message whose applier fails. The batch is recorded originals first, and the
    # other's failure holds back only what names it.
    gw = memory_gateway(tmp_path, ("332", "336"))
    original, poison = assessments(gw, gw, ["DUD-1", "DUD-2"])
    recall = _on_try(recall_of(gw, original), gw.settings.delivery.retry_budget)

    def fails_on_the_poison(_ctx: ApplyContext, received: Received) -> None:
        if received.message_id == poison.message_id:
            raise RuntimeError("a bug met by the poison")

    gw = _with_assessment_applier(gw, fails_on_the_poison)
    out = handle_batch(gw, [recall, replace(poison, tag=8), replace(original, tag=9)])
    assert [d.verdict for d in out] == [Verdict.ACK, Verdict.RETRY, Verdict.ACK]
    rows = _inbound(gw)
    assert rows[original.message_id].status is Status.WITHDRAWN
    assert rows[recall.message_id].status is not Status.QUARANTINED
    assert poison.message_id not in rows


def _batches_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of more than one fails unexpectedly: taken one by one."""
    real_handle = pipeline._handle

    def the_batch_fails(turn: Any, deliveries: Any, *rest: Any) -> Any:
        if len(deliveries) > 1:
            raise RuntimeError("a bug met by the batch")
        return real_handle(turn, deliveries, *rest)

    monkeypatch.setattr(pipeline, "_handle", the_batch_fails)


def test_taken_one_by_one_a_recall_ahead_of_its_original_is_taken_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = _on_try(recall_of(gw, original), gw.settings.delivery.retry_budget)
    _batches_fail(monkeypatch)
    out = handle_batch(gw, [recall, replace(original, tag=9)])
    assert [d.verdict for d in out] == [Verdict.ACK, Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.WITHDRAWN


def test_a_recall_stands_for_its_original_past_a_forged_copy_refused_under_its_id(
    tmp_path: Path,
) -> None:
    # Bytes that claim to be 332's original but fail their signature are quarantined
    # under 332 and the original's id. That is no original of 332's: the recall stands
    # for the real one (it would have been refused for the digest), which is withdrawn
    # on arrival.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    forged = replace(original, body=original.body.replace(b"DUD-1", b"DUD-9", 1), tag=7)
    assert [d.verdict for d in handle_batch(gw, [forged])] == [Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.QUARANTINED
    recall = recall_of(gw, original)
    assert [d.verdict for d in handle_batch(gw, [recall])] == [Verdict.ACK]
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    withdrawn = [
        r
        for r in gw.ledger.find(authority="336", direction=Direction.INBOUND)
        if r.message_id == original.message_id and r.status is Status.WITHDRAWN
    ]
    assert len(withdrawn) == 1


@pytest.mark.parametrize(
    ("ids", "names", "order"),
    [
        # a correction of a correction, both ahead of the original: the chain follows it
        (["C1", "C2", "O"], ["O", "C1", None], [2, 0, 1]),
        # an original already placed: nothing moves, least of all ahead of others
        (["O", "Y", "R"], [None, None, "O"], [0, 1, 2]),
        # two messages naming each other: neither can wait for the other; both go
        # after the rest, never ahead of another's message
        (["A", "B", "Z"], ["B", "A", None], [2, 0, 1]),
        # an id twice (a re-send in the batch): what names it follows the first copy
        (["R", "O", "O"], ["O", None, None], [1, 0, 2]),
        # a message naming itself
        (["A"], ["A"], [0]),
    ],
)
def test_a_batch_is_recorded_originals_first_and_nothing_moves_ahead(
    ids: list[str], names: list[str | None], order: list[int]
) -> None:
    keys: list[tuple[str, str] | None] = [("332", i) for i in ids]
    named = [("332", n) if n is not None else None for n in names]
    assert pipeline._originals_first(keys, named) == order


def test_a_long_chain_of_corrections_is_ordered_without_deep_recursion() -> None:
    count = 5000  # each names the one after it in the batch: the last is the original
    keys = [("332", str(i)) for i in range(count)]
    named = [("332", str(i + 1)) for i in range(count - 1)] + [None]
    assert pipeline._originals_first(keys, named) == list(reversed(range(count)))


def test_one_by_one_a_message_naming_a_waiting_one_is_judged_not_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch failed and is taken one by one. A recall of a correction that waits
    # (for an original not here) is judged as it would be alone: it stands, never
    # parked unanswered (on its last try) as behind a failure.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (never_sent,) = assessments(gw, gw, ["DUD-1"])
    waiting = _correction_of(gw, never_sent)
    last = _on_try(recall_of(gw, waiting), gw.settings.delivery.retry_budget)
    _batches_fail(monkeypatch)
    out = handle_batch(gw, [waiting, replace(last, tag=9)])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.ACK]
    assert _notes(gw, last)[last.message_id].action is ActionTaken.NOT_HELD


def _ledger_fails_for(gw: Gateway, message_id: str | None) -> Gateway:
    def fails(_ctx: ApplyContext, received: Received) -> None:
        if received.message_id == message_id:
            raise LedgerError("the ledger failed (a lock, a deadlock)")

    return _with_assessment_applier(gw, fails)


def test_what_names_a_message_held_back_with_its_original_is_held_back_too(
    tmp_path: Path,
) -> None:
    # The original fails; its correction is held back with it, never judged without
    # it; a recall of that correction is judged, and stands.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    correction = _correction_of(gw, original)
    again = _on_try(recall_of(gw, correction), gw.settings.delivery.retry_budget)
    gw = _ledger_fails_for(gw, original.message_id)
    out = handle_batch(gw, [original, correction, replace(again, tag=9)])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.RETRY, Verdict.ACK]
    assert "retried with it" in (out[1].reason or "")
    assert set(_inbound(gw)) == {again.message_id}


def test_a_correction_of_an_original_published_without_an_amqp_id_is_held_back_with_it(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall = _on_try(_correction_of(gw, original), gw.settings.delivery.retry_budget)
    gw = _ledger_fails_for(gw, original.message_id)
    out = handle_batch(gw, [replace(original, message_id=None), replace(recall, tag=9)])
    assert [d.verdict for d in out] == [Verdict.RETRY, Verdict.RETRY]
    assert "retried with it" in (out[1].reason or "")


def test_a_recall_naming_another_digest_of_a_refused_original_stands(
    tmp_path: Path,
) -> None:
    # 332's original was refused by policy here; its recall names other bytes. It
    # stands (the copy refused might be a forgery under 332's name) for the bytes it
    # names; the refused copy stays refused.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])

    def refuses(_ctx: ApplyContext, received: Received) -> None:
        raise PolicyRefusal("test-rule", "refused here")

    refusing = _with_assessment_applier(gw, refuses)
    assert [d.verdict for d in handle_batch(refusing, [original])] == [Verdict.ACK]
    other = replace(original, body=original.body.replace(b"DUD-1", b"DUD-2", 1))
    recall = recall_of(gw, other)  # names the original's id with other bytes' digest
    assert [d.verdict for d in handle_batch(gw, [recall])] == [Verdict.ACK]
    assert _notes(gw, recall)[recall.message_id].action is ActionTaken.NOT_HELD
    assert _inbound(gw)[original.message_id].status is Status.QUARANTINED
