"""A party's message is its statement, never a change to another's records: a party
(333) that signs the owner's (332) own record as its own message to the owner, then
recalls it or asks for its erasure, must not make the owner recall or erase its own
sends to a third authority (336). Only what the holder sent on after a copy came
follows that copy (``lifecycle.held.sent_on``). Found by a review, 2026-12-06."""

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
from gateway.model import Assessment, ErasureGround, RecallReason
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


def _echo(gw: Gateway) -> tuple[MessageRecord, MessageRecord]:
    """333 sends 332's own record (received from 332) back to 332 as its own message."""
    dudley_shared(gw)
    to_336 = _sent(gw, "332", "336")
    got = _copy(gw, "333", "332", _sent(gw, "332", "333").message_id)
    env = envelope_of(gw, got)
    assert env is not None and isinstance(env.body, Assessment)
    echo = new_envelope(
        gw.clock,
        sender="333",
        recipient="332",
        body=env.body,
        correlation=correlation_id("333", env.body.case_ref),  # "333's own case"
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(echo)])
    pump(gw)
    echoed = _copy(gw, "332", "333", echo.header.message_id)
    assert echoed.status != Status.QUARANTINED, echoed.reason
    return to_336, echoed


def test_a_partys_recall_of_an_echo_leaves_the_owners_own_send_to_a_third_la_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    to_336, echoed = _echo(gw)
    assert _copy(gw, "336", "332", to_336.message_id).status == Status.VERIFIED
    sender.recall(gw, "333", echoed.message_id, RecallReason.OTHER, None, "hostile")
    pump(gw)
    # 332 never decided to recall its record from Wolverhampton:
    assert _copy(gw, "336", "332", to_336.message_id).status == Status.VERIFIED


def test_a_partys_erasure_request_for_an_echo_leaves_the_owners_own_records_alone(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    to_336, echoed = _echo(gw)
    with gw.ledger.transaction() as conn:
        erasure.queue_notices(
            gw,
            conn,
            "333",
            {"332": ((echoed.message_id, echoed.digest or ""),)},
            ErasureGround.UNLAWFUL,
            "H/1",
            "hostile",
        )
    pump(gw)
    # 332's own send to 336 must keep its body, and 336's copy must not be erased:
    assert gw.ledger.body_of("332", Direction.OUTBOUND, to_336.message_id) is not None
    assert gw.ledger.body_of("336", Direction.INBOUND, to_336.message_id) is not None


# A record the holder (336) already has from its owner (332), echoed to it by a
# party (333): what 336 then sends on is 332's record, not a forward of the echo.
def _echo_of_a_held_record(gw: Gateway) -> tuple[MessageRecord, str]:
    dudley_shared(gw)  # 332 sends its record to 333 and 336
    got_333 = _copy(gw, "333", "332", _sent(gw, "332", "333").message_id)
    env = envelope_of(gw, got_333)
    assert env is not None and isinstance(env.body, Assessment)
    # 333 (hostile) signs 332's record as its own message to 336
    echo = new_envelope(
        gw.clock,
        sender="333",
        recipient="336",
        body=env.body,
        correlation=correlation_id("333", env.body.case_ref),
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(echo)])
    pump(gw)
    echoed = _copy(gw, "336", "333", echo.header.message_id)
    assert echoed.status != Status.QUARANTINED, echoed.reason
    # 336 later sends the record (which it holds from 332) on to 334, its own decision
    onward = new_envelope(
        gw.clock,
        sender="336",
        recipient="334",
        body=env.body,
        correlation=correlation_id("336", "WOL-ONWARD-1"),
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(onward)])
    pump(gw)
    assert _copy(gw, "334", "336", onward.header.message_id).status == Status.VERIFIED
    return echoed, onward.header.message_id


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
    with gw.ledger.transaction() as conn:
        erasure.queue_notices(
            gw,
            conn,
            "333",
            {"336": ((echoed.message_id, echoed.digest or ""),)},
            ErasureGround.UNLAWFUL,
            "H/2",
            "hostile",
        )
    pump(gw)
    kept = (
        gw.ledger.body_of("336", Direction.OUTBOUND, onward) is not None,
        gw.ledger.body_of("334", Direction.INBOUND, onward) is not None,
    )
    assert kept == (True, True), kept
