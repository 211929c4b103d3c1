"""A received ErasureRequest (in-memory region): the recipient erases the copies its sender
names, withdraws what its local system never had, passes the request on where it had
them, and its signed receipt proves it; nobody can erase what another authority sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_support import envelope_of, pump
from retention_support import SIOBHAN, Clock, dudley_shared, region
from sqlalchemy import select
from support.gateways import deliver_queue

from gateway.cases.identity import correlation_id
from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import outcomes
from gateway.model import (
    ActionTaken,
    ErasureGround,
    ErasureRequest,
    LegalBasis,
    MessageRef,
    Receipt,
    ReceiptItem,
)
from gateway.outbox import new_envelope
from gateway.retention import erasure, purge
from gateway.retention.tables import retention_runs
from gateway.services import delivery

pytestmark = pytest.mark.timeout(120)


def _received(gw: Gateway, authority: str, sender: str = "332") -> list[MessageRecord]:
    return [
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.INBOUND, limit=500)
        if r.sender == sender and r.message_type not in ("Receipt", "ErasureRequest")
    ]


def _item(gw: Gateway, authority: str, message_id: str) -> ReceiptItem:
    for row in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500):
        if row.message_type == "Receipt":
            env = envelope_of(gw, row)
            assert env is not None and isinstance(env.body, Receipt)
            for item in env.body.items:
                if item.message_id == message_id:
                    return item
    raise AssertionError(f"no receipt of {authority} covers {message_id}")


def _request(gw: Gateway, authority: str) -> MessageRecord:
    [row] = [
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.INBOUND, limit=500)
        if r.message_type == "ErasureRequest"
    ]
    return row


def test_an_erasure_request_erases_the_copies_and_the_receipt_proves_it(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    for row in _received(gw, "336"):
        gw.ledger.acknowledge_local("336", row.message_id)  # Wolverhampton's system had them
    erasure.erase_child(
        gw,
        "332",
        SIOBHAN[1],
        ground=ErasureGround.CONSENT_WITHDRAWN,
        reference="DPO/2026/301",
        actor="Dudley DPO",
    )
    pump(gw)
    for code in ("333", "336"):
        request = _request(gw, code)
        item = _item(gw, code, request.message_id)
        assert item.action == ActionTaken.ERASED, code
        assert "erased" in (item.reason or "")
        erased = [
            r for r in _received(gw, code) if any(h.status == Status.ERASED for h in r.history)
        ]
        assert erased, code
        assert all(gw.ledger.body_of(code, Direction.INBOUND, r.message_id) is None for r in erased)
    # Sandwell's system never had them: withdrawn, and the request is not handed over.
    assert _item(gw, "333", _request(gw, "333").message_id).handed_over_at is None
    assert _request(gw, "333").status == Status.WITHDRAWN
    # Wolverhampton's had them: the request goes to it, with the date in the receipt.
    assert _item(gw, "336", _request(gw, "336").message_id).handed_over_at is not None
    assert _request(gw, "336").message_id in {i.message_id for i in gw.ledger.inbox("336")}
    with gw.ledger.transaction() as conn:
        got = [o for o in outcomes.outcomes_of(conn, "332") if o.kind == "ERASURE"]
    assert {o.recipient: o.action for o in got} == {"333": "ERASED", "336": "ERASED"}
    assert audit.verify(gw.ledger) == []


def test_an_erasure_request_cannot_erase_what_another_authority_sent(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    targets = _received(gw, "333")
    hostile = new_envelope(
        gw.clock,
        sender="336",
        recipient="333",
        body=ErasureRequest(
            "W/1",
            ErasureGround.UNLAWFUL,
            tuple(MessageRef(r.message_id, r.digest or "") for r in targets),
        ),
        correlation="W/1",
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    gw.ledger.record([gw.outbox.sign(hostile)])
    pump(gw)
    item = _item(gw, "333", hostile.header.message_id)
    assert item.action == ActionTaken.NOT_HELD
    assert all(
        gw.ledger.body_of("333", Direction.INBOUND, r.message_id) is not None for r in targets
    )


def _forward_recorded(gw: Gateway, thread: str, *, share: bool = True) -> str:
    """Sandwell (333) sends Dudley's record on to Walsall (334), on a thread of its own:
    recorded in its outbox, not yet published; the forward's message id. ``share``:
    Dudley shares its records first (else they were shared already)."""
    if share:
        dudley_shared(gw)
    [original] = [r for r in _received(gw, "333") if r.message_type == "Assessment"]
    env = envelope_of(gw, original)
    assert env is not None
    forward = new_envelope(
        gw.clock,
        sender="333",
        recipient="334",
        body=env.body,
        correlation=correlation_id("333", thread),
        legal_basis=LegalBasis.CONSENT,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    gw.ledger.record([gw.outbox.sign(forward)])
    return forward.header.message_id


def _erasure_from_dudley(gw: Gateway, reference: str) -> None:
    erasure.erase_child(
        gw,
        "332",
        SIOBHAN[1],
        ground=ErasureGround.CONSENT_WITHDRAWN,
        reference=reference,
        actor="Dudley DPO",
    )
    pump(gw)


def test_an_erasure_request_follows_a_copy_the_recipient_forwarded(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    fid = _forward_recorded(gw, "SAN-FWD-2")
    pump(gw)
    assert gw.ledger.body_of("334", Direction.INBOUND, fid) is not None
    _erasure_from_dudley(gw, "DPO/2026/302")
    item = _item(gw, "333", _request(gw, "333").message_id)
    assert item.action == ActionTaken.ERASED and "forwarded to 334" in (item.reason or "")
    assert gw.ledger.body_of("333", Direction.OUTBOUND, fid) is None  # its own copy too
    assert gw.ledger.body_of("334", Direction.INBOUND, fid) is None  # and Walsall's
    with gw.ledger.transaction() as conn:
        [onward] = [o for o in outcomes.outcomes_of(conn, "333") if o.kind == "ERASURE"]
    assert onward.recipient == "334" and onward.action == ActionTaken.ERASED.value
    assert audit.verify(gw.ledger) == []


def test_a_forward_withdrawn_by_an_erasure_request_is_counted_in_its_run(
    tmp_path: Path,
) -> None:
    # Sandwell's forward to Walsall is still queued when Dudley's request comes: it is
    # withdrawn, and the run says so as a run of Sandwell's own erasure does.
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    erasure.erase_child(
        gw, "332", SIOBHAN[1], ground=ErasureGround.CONSENT_WITHDRAWN, reference="DPO/2026/304",
        actor="Dudley DPO",
    )  # fmt: skip
    delivery.publish_outbox(gw)  # the request waits on Sandwell's inbox queue
    fid = _forward_recorded(gw, "SAN-FWD-4", share=False)
    assert deliver_queue(gw, "caf.inbox.333") >= 1
    [mine] = gw.ledger.find(authority="333", direction=Direction.OUTBOUND, message_id=fid)
    assert mine.status is Status.WITHDRAWN
    with gw.ledger.transaction() as conn:
        [summary] = conn.execute(
            select(retention_runs.c.summary).where(
                retention_runs.c.authority == "333", retention_runs.c.kind == "ERASURE"
            )
        ).scalars()
    assert json.loads(summary)[purge.WITHDRAWN_FROM_OUTBOX] == 1
    assert "erasure_notices" not in json.loads(summary)  # it never left: nobody to tell


def test_an_erasure_request_is_passed_on_for_a_forward_being_published(tmp_path: Path) -> None:
    # Sandwell's sender loop has claimed its forward to Walsall and read its body: it
    # may be on the wire. Withdrawn "before it was sent", Walsall would never have been
    # told to erase it (a review found it).
    gw = region(tmp_path, Clock.starting_now())
    fid = _forward_recorded(gw, "SAN-FWD-3")
    now = gw.clock()
    claimed = gw.ledger.claim_outbox(500, ("333",), now, now + delivery.outbox_lease(gw))
    [row] = [i for i in claimed if i.message_id == fid]
    _erasure_from_dudley(gw, "DPO/2026/303")
    [mine] = gw.ledger.find(authority="333", direction=Direction.OUTBOUND, message_id=fid)
    assert mine.status is not Status.WITHDRAWN
    with gw.ledger.transaction() as conn:
        [onward] = [o for o in outcomes.outcomes_of(conn, "333") if o.kind == "ERASURE"]
    assert onward.recipient == "334"
    assert row.pk == mine.pk
