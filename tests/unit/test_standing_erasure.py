"""An erasure request that reaches the recipient before a message it names stands for it.

Before, it found nothing, was receipted ``NOT_HELD``, and the message, when it
came (retried after a failure, or parked and replayed), was kept and handed to
the local system although its sender had asked for it to be erased. Now the
request stands (``gateway.lifecycle.standing``) and the message is erased as it
arrives (``gateway.retention.received.on_arrival``). In-memory gateway hosting
332 and 336; 332's messages as the broker hands them to 336.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from support.clock import Clock
from support.gateways import memory_gateway
from support.received import assessments, erasure_of, recall_of

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.feature import ApplyContext, ReceiptNote, Received
from gateway.ledger import audit
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.lifecycle import outcomes, receiver, standing
from gateway.model import (
    ERASURE_NAMED_MAX,
    ActionTaken,
    Envelope,
    ErasureGround,
    ErasureRequest,
    MessageType,
    Receipt,
    ReceiptItem,
    ReceiptOutcome,
)
from gateway.retention import erasure, received
from gateway.retention.tables import tombstones
from gateway.services.receiving import handle_batch, pipeline
from gateway.services.receiving.checks import source_of
from gateway.transport.base import Delivery, Verdict, routing_key
from gateway.transport.provenance import publishers_for
from gateway.transport.retry import ATTEMPT_HEADER

pytestmark = pytest.mark.timeout(120)


def _inbound(gw: Gateway) -> dict[str, MessageRecord]:
    return {r.message_id: r for r in gw.ledger.find(authority="336", direction=Direction.INBOUND)}


def _notes(gw: Gateway, *delivered: Delivery) -> dict[str, ReceiptNote]:
    """What the receipt items for ``delivered`` (332's, at 336) say was done."""
    keys = [("336", "332", d.message_id or "") for d in delivered]
    with gw.ledger.transaction() as conn:
        return {k[2]: note for k, note in receiver.receipt_notes(conn, keys).items()}


def _body(gw: Gateway, delivery: Delivery) -> bytes | None:
    return gw.ledger.body_of("336", Direction.INBOUND, delivery.message_id or "")


def _tombstoned(gw: Gateway, delivery: Delivery) -> bool:
    with gw.ledger.transaction() as conn:
        found = conn.execute(
            select(tombstones.c.id)
            .select_from(tombstones.join(messages, tombstones.c.message_pk == messages.c.id))
            .where(
                messages.c.authority == "336",
                messages.c.message_id == delivery.message_id,
            )
        ).first()
    return found is not None


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


def _judging(gw: Gateway, judged: list[str]) -> Gateway:
    """``gw`` with one more Assessment applier, which notes each record it is asked to judge."""
    appliers = dict(gw.appliers)

    def note(_ctx: ApplyContext, msg: Received) -> None:
        judged.append(msg.message_id)

    appliers[MessageType.ASSESSMENT] = (*appliers.get(MessageType.ASSESSMENT, ()), note)
    return replace(gw, appliers=appliers)


def _erased_on_arrival(gw: Gateway, original: Delivery) -> None:
    """``original`` was recorded withdrawn and restricted, never for the local system, and
    erased: no body, a tombstone, its history and its own receipt item say so."""
    row = _inbound(gw)[original.message_id]
    assert row.status is Status.WITHDRAWN, row.reason
    assert row.restricted
    assert _body(gw, original) is None
    assert _tombstoned(gw, original)
    assert any(h.status is Status.ERASED for h in row.history)
    assert original.message_id not in {m.message_id for m in gw.ledger.inbox("336")}
    own = _notes(gw, original)[original.message_id]
    assert own.action is ActionTaken.ERASED
    assert "erased" in (own.reason or "") and "before it came" in (own.reason or "")


def test_an_erasure_request_before_its_message_stands_and_the_message_is_erased_on_arrival(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, original)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    first = _notes(gw, request)[request.message_id]
    assert first.action is ActionTaken.NOT_HELD
    assert received.STANDS in (first.reason or "")
    assert _inbound(gw)[request.message_id].status is Status.WITHDRAWN  # nothing to tell

    judged: list[str] = []
    gw = _judging(gw, judged)
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    _erased_on_arrival(gw, original)
    assert judged == []  # nothing the record says takes effect here
    assert _receipt_due(gw, request)  # receipted again, saying what was done now
    now = _notes(gw, request)[request.message_id]
    assert now.action is ActionTaken.ERASED
    assert (now.reason or "").endswith(
        "since: 1 of the 1 it stood for came and was erased on arrival"
    )
    assert received.STANDS in (now.reason or "")  # what it said when it came is kept
    actions = [e.event.action for e in audit.entries(gw.ledger)]
    assert "ERASURE_ON_ARRIVAL" in actions
    assert audit.verify(gw.ledger) == []


def test_a_message_before_its_erasure_request_in_one_batch_is_erased_by_it(
    tmp_path: Path,
) -> None:
    # Both recorded in one transaction, the request saw nothing of the message (not yet
    # recorded) and stood for nothing: the batch is cut before the request.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, original)
    assert [d.verdict for d in handle_batch(gw, [original, request])] == [Verdict.ACK] * 2
    row = _inbound(gw)[original.message_id]
    assert _body(gw, original) is None
    assert any(h.status is Status.ERASED for h in row.history)
    assert _notes(gw, request)[request.message_id].action is ActionTaken.ERASED


def test_an_erasure_request_ahead_of_its_message_in_one_batch_erases_it_on_arrival(
    tmp_path: Path,
) -> None:
    # The message's retry came back behind the request; the request names no message
    # by its header, so it is not moved: it stands, and the message after it is erased.
    gw = memory_gateway(tmp_path, ("332", "336"))
    other, original = assessments(gw, gw, ["DUD-2", "DUD-1"])
    request = erasure_of(gw, original)
    out = handle_batch(gw, [other, replace(request, tag=8), replace(original, tag=9)])
    assert [d.verdict for d in out] == [Verdict.ACK] * 3
    _erased_on_arrival(gw, original)
    assert _inbound(gw)[other.message_id].status is Status.VERIFIED
    assert _body(gw, other) is not None


def test_a_request_for_messages_held_and_not_yet_erases_the_one_and_stands_for_the_other(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    here, later = assessments(gw, gw, ["DUD-1", "DUD-2"])
    assert [d.verdict for d in handle_batch(gw, [here])] == [Verdict.ACK]
    request = erasure_of(gw, here, later)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    first = _notes(gw, request)[request.message_id]
    assert first.action is ActionTaken.ERASED
    assert "erased 1 of the 2 messages named" in (first.reason or "")
    assert "1 not received here yet" in (first.reason or "")
    assert _body(gw, here) is None

    assert [d.verdict for d in handle_batch(gw, [later])] == [Verdict.ACK]
    _erased_on_arrival(gw, later)
    now = _notes(gw, request)[request.message_id].reason or ""
    assert "erased 1 of the 2 messages named" in now
    assert now.endswith("1 of the 1 it stood for came and was erased on arrival")


def test_a_standing_request_erases_only_the_message_with_the_digest_it_names(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, original)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    env = element_to_envelope(xmlsafe.parse(original.body, max_bytes=1_000_000, max_depth=64))
    assert env.body is not None
    other = gw.outbox.sign(
        Envelope(env.header, replace(env.body, source_system="another export"))  # type: ignore[type-var]
    )
    assert other.body is not None and other.message_id == original.message_id
    assert [d.verdict for d in handle_batch(gw, [replace(original, body=other.body)])] == [
        Verdict.ACK
    ]
    assert _inbound(gw)[original.message_id].status is Status.VERIFIED
    assert _body(gw, original) is not None
    assert _notes(gw, request)[request.message_id].action is ActionTaken.NOT_HELD


def test_a_request_made_before_its_message_does_not_erase_it(tmp_path: Path) -> None:
    # An honest request follows what it names; one dated before the record names a
    # record not yet made: the record is judged as ever.
    clock = Clock(datetime.now(UTC) - timedelta(seconds=30))
    gw = memory_gateway(tmp_path, ("332", "336"), clock=clock)
    (later,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, later)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    assert [d.verdict for d in handle_batch(gw, [later])] == [Verdict.ACK]
    assert _inbound(gw)[later.message_id].status is Status.VERIFIED
    assert _body(gw, later) is not None


def test_another_authoritys_request_stands_for_nothing_of_the_senders(tmp_path: Path) -> None:
    # 335 names a message 332 has not sent yet: what stands is 335's, and 332's message,
    # when it comes, is not the one it names (another sender).
    gw = memory_gateway(tmp_path, ("332", "335", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    forged = _as_335(gw, erasure_of(gw, original))
    assert [d.verdict for d in handle_batch(gw, [forged])] == [Verdict.ACK]
    with gw.ledger.transaction() as conn:  # it stood, as 335's (not refused)
        assert standing.tally(conn, "336", "335", forged.message_id or "") == (0, 1)
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    assert _inbound(gw)[original.message_id].status is Status.VERIFIED
    assert _body(gw, original) is not None


def test_a_recall_and_an_erasure_request_standing_for_one_message_are_both_answered(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    recall, request = recall_of(gw, original), erasure_of(gw, original, tag_step=2)
    assert [d.verdict for d in handle_batch(gw, [recall, request])] == [Verdict.ACK] * 2
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    _erased_on_arrival(gw, original)
    notes = _notes(gw, recall, request, original)
    assert notes[recall.message_id].action is ActionTaken.WITHDRAWN
    assert notes[request.message_id].action is ActionTaken.ERASED
    assert "recall" in (notes[original.message_id].reason or "")


def test_only_a_few_requests_stand_for_one_message_and_the_next_says_it_cannot(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    (never_sent,) = assessments(gw, gw, ["DUD-1"])
    requests = [erasure_of(gw, never_sent) for _ in range(standing.STANDING_MAX + 1)]
    for request in requests:
        assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    notes = _notes(gw, *requests)
    assert all(received.STANDS in (notes[r.message_id].reason or "") for r in requests[:-1])
    last = notes[requests[-1].message_id].reason or ""
    assert received.STANDS not in last and "cannot stand" in last


def test_a_late_not_held_receipt_does_not_undo_the_erasure_its_recipient_proved(
    tmp_path: Path,
) -> None:
    # 336 receipted the standing request NOT_HELD, then ERASED once the message came;
    # the receipts reach 332 the other way round.
    gw = memory_gateway(tmp_path, ("332", "336"))
    with gw.ledger.transaction() as conn:
        erasure.queue_notices(
            gw, conn, "332", {"336": (("m-1", "a" * 64),)},
            ErasureGround.CONSENT_WITHDRAWN, "DPO/1", "Dudley DPO",
        )  # fmt: skip
    (sent,) = [
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND)
        if r.message_type == "ErasureRequest"
    ]
    item = ReceiptItem(sent.message_id, sent.digest or "", ReceiptOutcome.ACCEPTED)
    now = datetime.now(UTC)
    for receipt_id, action, taken in (
        ("r-2", ActionTaken.ERASED, 1),
        ("r-1", ActionTaken.NOT_HELD, 0),
    ):
        body = Receipt((replace(item, action=action, reason=action.value),))
        with gw.ledger.transaction() as conn:
            assert outcomes.apply_receipt(conn, "332", "336", receipt_id, body, now) == taken
    with gw.ledger.transaction() as conn:
        (got,) = [o for o in outcomes.outcomes_of(conn, "332") if o.kind == "ERASURE"]
    assert got.action == ActionTaken.ERASED.value


def test_a_retried_message_an_erasure_request_stands_for_is_erased_on_its_retry(
    tmp_path: Path,
) -> None:
    # The broker's relay hands the message back after a failure: same bytes, same id.
    gw = memory_gateway(tmp_path, ("332", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, original)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    retried = replace(original, headers={ATTEMPT_HEADER: 3})
    assert [d.verdict for d in handle_batch(gw, [retried])] == [Verdict.ACK]
    _erased_on_arrival(gw, original)


def test_an_erasure_request_is_recorded_under_the_lock_of_each_id_it_names(
    tmp_path: Path,
) -> None:
    # Replicas on PostgreSQL: one standing a request, another recording a message it
    # names at the same moment, take turns on the message's id (an advisory lock).
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, second = assessments(gw, gw, ["DUD-1", "DUD-2"])
    request = erasure_of(gw, first, second)
    checked = pipeline.check(gw, source_of(gw, request), request)
    names = set(pipeline._lock_names("336", [checked], [None]))
    assert {f"inbound:336:{first.message_id}", f"inbound:336:{second.message_id}"} <= names


def test_one_request_standing_for_two_messages_erases_each_as_it_comes(tmp_path: Path) -> None:
    # One request names every message sent about the child: several may be on their
    # way (found by a review: the second to stand broke the request's whole run).
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, second = assessments(gw, gw, ["DUD-1", "DUD-2"])
    request = erasure_of(gw, first, second)
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    assert "2 not received here yet" in (_notes(gw, request)[request.message_id].reason or "")
    assert [d.verdict for d in handle_batch(gw, [first])] == [Verdict.ACK]
    said = _notes(gw, request)[request.message_id].reason or ""
    assert said.endswith("1 of the 2 it stood for came and was erased on arrival; 1 still stand")
    assert [d.verdict for d in handle_batch(gw, [second])] == [Verdict.ACK]
    _erased_on_arrival(gw, first)
    _erased_on_arrival(gw, second)
    said = _notes(gw, request)[request.message_id].reason or ""
    assert said.endswith("2 of the 2 it stood for came and were erased on arrival")


def test_a_request_standing_first_in_a_batch_hides_no_other_senders_standing_request(
    tmp_path: Path,
) -> None:
    # The batch looks once for the senders with something standing. A request that
    # stood before that look began the set with its own sender only, and a message of
    # another sender, named by that sender's request standing from before, was kept
    # and handed over (found by a review; recalls had it too).
    gw = memory_gateway(tmp_path, ("332", "335", "336"))
    (theirs,) = assessments(gw, gw, ["DUD-9"])
    theirs = _as_335(gw, theirs)
    assert [d.verdict for d in handle_batch(gw, [_as_335(gw, erasure_of(gw, theirs))])] == [
        Verdict.ACK
    ]
    (ours,) = assessments(gw, gw, ["DUD-1"])
    now = erasure_of(gw, ours)  # 332's request, first in the batch, stands
    out = handle_batch(gw, [replace(now, tag=1), replace(theirs, tag=2)])
    assert [d.verdict for d in out] == [Verdict.ACK] * 2
    row = gw.ledger.find(message_id=theirs.message_id, authority="336")[0]
    assert row.status is Status.WITHDRAWN, row.reason
    assert gw.ledger.body_of("336", Direction.INBOUND, theirs.message_id) is None


def _as_335(gw: Gateway, delivery: Delivery) -> Delivery:
    """``delivery`` signed by 335 instead of 332 (header and routing key), as the broker
    hands it over."""
    env = element_to_envelope(xmlsafe.parse(delivery.body, max_bytes=1_000_000, max_depth=64))
    signed = gw.outbox.sign(Envelope(replace(env.header, sender="335"), env.body))
    assert signed.body is not None
    kind = delivery.routing_key.split(".")[1]
    return replace(
        delivery,
        routing_key=routing_key("336", kind, "335"),
        user_id=sorted(publishers_for(gw.settings.broker, "335"))[0],
        body=signed.body,
    )


def test_a_request_naming_more_than_the_limit_erases_what_is_held_and_stands_for_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sender from before 2026-12-07 names every message in one request. Each id a
    # request stands for is locked while it is recorded: 12,000 (what 2 MB holds)
    # exhausted PostgreSQL's lock table and failed the batch (found by a review).
    monkeypatch.setattr(standing, "SENDER_STANDING_MAX", 10 * ERASURE_NAMED_MAX)  # not it
    gw = memory_gateway(tmp_path, ("332", "336"))
    many = assessments(gw, gw, [f"DUD-{n}" for n in range(ERASURE_NAMED_MAX + 2)])
    held = many[-1]  # named last, past the limit, and here
    assert [d.verdict for d in handle_batch(gw, [held])] == [Verdict.ACK]
    request = erasure_of(gw, *many)
    checked = pipeline.check(gw, source_of(gw, request), request)
    locked = pipeline._lock_names("336", [checked], [None])
    assert len(locked) == len(set(locked)) == ERASURE_NAMED_MAX + 2  # its id, its thread
    assert [d.verdict for d in handle_batch(gw, [request])] == [Verdict.ACK]
    assert _body(gw, held) is None  # held: erased, wherever it is named
    with gw.ledger.transaction() as conn:
        stood = standing.tally(conn, "336", "332", request.message_id or "")
    assert stood == (0, ERASURE_NAMED_MAX)
    said = _notes(gw, request)[request.message_id].reason or ""
    assert f"erased 1 of the {ERASURE_NAMED_MAX + 2} messages named" in said
    assert "; 1 not received here yet cannot stand" in said, said


def test_a_sender_names_at_most_the_limit_in_one_request_and_the_rest_in_more(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    sent = tuple((f"m-{n}", f"{n:064x}") for n in range(ERASURE_NAMED_MAX + 10))
    with gw.ledger.transaction() as conn:
        queued = erasure.queue_notices(
            gw, conn, "332", {"336": sent}, ErasureGround.CONSENT_WITHDRAWN, "DPO/2", "DPO"
        )
    assert queued == 2
    requests = [
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND)
        if r.message_type == "ErasureRequest"
    ]
    named: list[str] = []
    for row in requests:
        body = gw.ledger.body_of("332", Direction.OUTBOUND, row.message_id)
        assert body is not None
        env = element_to_envelope(xmlsafe.parse(body, max_bytes=1_000_000, max_depth=64))
        assert isinstance(env.body, ErasureRequest) and env.body.request_ref == "DPO/2"
        assert len(env.body.messages) <= ERASURE_NAMED_MAX
        named += [m.message_id for m in env.body.messages]
    assert sorted(named) == sorted(m for m, _ in sent)


def test_a_run_holds_erasure_requests_naming_at_most_the_limit_between_them(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    many = assessments(gw, gw, [f"DUD-{n}" for n in range(200)])
    first, second = erasure_of(gw, *many[:150]), erasure_of(gw, *many[150:])
    third = erasure_of(gw, *many[:100])
    checked = [pipeline.check(gw, source_of(gw, d), d) for d in (first, second, third)]
    assert pipeline._runs(checked) == [[0, 1], [2]]


def test_a_request_naming_two_digests_for_one_message_not_come_stands_for_the_first_only(
    tmp_path: Path,
) -> None:
    # The second would break the request's run (one standing row an id), and every
    # other sender's message in it with it, until all were parked (found by a review).
    gw = memory_gateway(tmp_path, ("332", "335", "336"))
    (original,) = assessments(gw, gw, ["DUD-1"])
    request = erasure_of(gw, original)
    env = element_to_envelope(xmlsafe.parse(request.body, max_bytes=1_000_000, max_depth=64))
    assert isinstance(env.body, ErasureRequest)
    (named,) = env.body.messages
    twice = replace(env.body, messages=(named, replace(named, digest="e" * 64)))
    signed = gw.outbox.sign(Envelope(env.header, twice))
    assert signed.body is not None
    (honest,) = assessments(gw, gw, ["DUD-7"])
    honest = _as_335(gw, honest)
    out = handle_batch(gw, [replace(honest, tag=1), replace(request, body=signed.body, tag=2)])
    assert [d.verdict for d in out] == [Verdict.ACK] * 2
    assert _inbound(gw)[honest.message_id].status is not Status.QUARANTINED
    with gw.ledger.transaction() as conn:
        assert standing.tally(conn, "336", "332", request.message_id or "") == (0, 1)
    said = _notes(gw, request)[request.message_id].reason or ""
    assert said.startswith("erased 0 of the 1 messages named"), said
    assert [d.verdict for d in handle_batch(gw, [original])] == [Verdict.ACK]
    _erased_on_arrival(gw, original)
