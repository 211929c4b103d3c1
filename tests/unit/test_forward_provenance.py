"""A party's message is its statement, never a change to another's records.

A party (333) may sign a record it was given (332's) as its own message to the one
who owns it, or to one who holds it already (336), then recall it or ask for its
erasure: that must not make the holder recall or erase what it sent of that record
to a third authority. Only what the holder sent on after a copy came, of a record it
did not have before, follows that copy (``lifecycle.held.sent_on``). Found by
reviews, 2026-12-06.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import envelope_of, pump
from retention_support import Clock, dudley_shared, region

from gateway.cases.identity import correlation_id
from gateway.context import Gateway
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import sender
from gateway.model import Assessment, Envelope, ErasureGround, RecallReason
from gateway.outbox import new_envelope
from gateway.retention import erasure

pytestmark = pytest.mark.timeout(120)


def _sent(gw: Gateway, authority: str, recipient: str) -> MessageRecord:
    return next(
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500)
        if r.recipient == recipient and r.message_type == "Assessment"
    )


def _copy(gw: Gateway, authority: str, sender_: str, message_id: str) -> MessageRecord:
    [row] = [
        r
        for r in gw.ledger.find(
            message_id=message_id, authority=authority, direction=Direction.INBOUND
        )
        if r.sender == sender_
    ]
    return row


def _dudleys_record_at_333(gw: Gateway) -> Envelope:
    """332 shares its record (with 333 and 336); 333's copy, as received."""
    dudley_shared(gw)
    env = envelope_of(gw, _copy(gw, "333", "332", _sent(gw, "332", "333").message_id))
    assert env is not None and isinstance(env.body, Assessment)
    return env


def _signed_as_own(gw: Gateway, env: Envelope, by: str, to: str, case: str) -> str:
    """``env``'s record signed by ``by`` as its own message to ``to``, on a case of its
    own, and delivered; its message id."""
    mine = new_envelope(
        gw.clock,
        sender=by,
        recipient=to,
        body=env.body,
        correlation=correlation_id(by, case),
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(mine)])
    pump(gw)
    return mine.header.message_id


def _erasure_asked_by_333(gw: Gateway, of: MessageRecord, at: str, reference: str) -> None:
    with gw.ledger.transaction() as conn:
        erasure.queue_notices(
            gw,
            conn,
            "333",
            {at: ((of.message_id, of.digest or ""),)},
            ErasureGround.UNLAWFUL,
            reference,
            "hostile",
        )
    pump(gw)


def _echo_to_the_owner(gw: Gateway) -> tuple[MessageRecord, MessageRecord]:
    """333 sends 332's own record back to 332 as its own message: 332's send to 336,
    and 332's copy of the echo."""
    env = _dudleys_record_at_333(gw)
    assert isinstance(env.body, Assessment)
    echo_id = _signed_as_own(gw, env, "333", "332", env.body.case_ref)
    echoed = _copy(gw, "332", "333", echo_id)
    assert echoed.status != Status.QUARANTINED, echoed.reason
    return _sent(gw, "332", "336"), echoed


def test_a_partys_recall_of_an_echo_leaves_the_owners_own_send_to_a_third_la_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    to_336, echoed = _echo_to_the_owner(gw)
    assert _copy(gw, "336", "332", to_336.message_id).status == Status.VERIFIED
    sender.recall(gw, "333", echoed.message_id, RecallReason.OTHER, None, "hostile")
    pump(gw)
    # 332 never decided to recall its record from Wolverhampton:
    assert _copy(gw, "336", "332", to_336.message_id).status == Status.VERIFIED


def test_a_partys_erasure_request_for_an_echo_leaves_the_owners_own_records_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    to_336, echoed = _echo_to_the_owner(gw)
    _erasure_asked_by_333(gw, echoed, "332", "H/1")
    # 332's own send to 336 keeps its body, and 336's copy is not erased:
    assert gw.ledger.body_of("332", Direction.OUTBOUND, to_336.message_id) is not None
    assert gw.ledger.body_of("336", Direction.INBOUND, to_336.message_id) is not None


def _echo_of_a_held_record(gw: Gateway) -> tuple[MessageRecord, str]:
    """333 echoes to 336 the record 336 already has from its owner (332); 336 then sends
    that record on to 334, its own decision: 336's copy of the echo, and the send."""
    env = _dudleys_record_at_333(gw)
    assert isinstance(env.body, Assessment)
    echoed = _copy(gw, "336", "333", _signed_as_own(gw, env, "333", "336", env.body.case_ref))
    assert echoed.status != Status.QUARANTINED, echoed.reason
    onward = _signed_as_own(gw, env, "336", "334", "WOL-ONWARD-1")
    assert _copy(gw, "334", "336", onward).status == Status.VERIFIED
    return echoed, onward


def test_a_recall_of_an_echo_of_a_record_held_from_another_leaves_its_send_on_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    echoed, onward = _echo_of_a_held_record(gw)
    sender.recall(gw, "333", echoed.message_id, RecallReason.OTHER, None, "hostile")
    pump(gw)
    assert _copy(gw, "334", "336", onward).status == Status.VERIFIED


def test_an_erasure_request_for_an_echo_of_a_held_record_leaves_its_send_on_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    echoed, onward = _echo_of_a_held_record(gw)
    _erasure_asked_by_333(gw, echoed, "336", "H/2")
    kept = (
        gw.ledger.body_of("336", Direction.OUTBOUND, onward) is not None,
        gw.ledger.body_of("334", Direction.INBOUND, onward) is not None,
    )
    assert kept == (True, True), kept
