"""Issue 12's remaining paths, on the in-memory transport: one case identity
however an envelope names the case; every copy of a dispute ends the same; one
local record handed over once whichever path re-sends it; outbox rows claimed
so two publishers never publish one twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dispute_helpers import Clock, drain, request
from dispute_helpers import memory_gateway as dispute_gateway
from policy_support import (
    ALL,
    SANDWELL,
    WOLVERHAMPTON,
    envelope_of,
    memory_gateway,
    pump,
    submit,
)
from support.gateways import memory_gateway as plain_gateway
from support.gateways import settle

from gateway.context import Gateway
from gateway.disputes import escalations, service
from gateway.disputes.escalations import EscalationStatus
from gateway.errors import PolicyRefusal
from gateway.ledger.status import Direction, Status
from gateway.model import Assessment, Audience, LegalBasis, Notification, NotificationType
from gateway.services import delivery, outbound
from gateway.transport.memory import MemoryTransport

pytestmark = pytest.mark.timeout(120)


def _sandwell(tmp_path: Path) -> Gateway:
    gw = memory_gateway(tmp_path)
    submit(gw, "333", "sandwell-xml", SANDWELL.read_bytes(), SANDWELL.name)
    pump(gw)
    return gw


@pytest.mark.parametrize("named_by", ["case reference", "thread id"])
def test_a_family_notice_is_refused_however_the_envelope_names_the_case(
    tmp_path: Path, named_by: str
) -> None:
    gw = _sandwell(tmp_path)
    thread = next(
        r.correlation_id
        for r in gw.ledger.find(authority="333", direction=Direction.OUTBOUND, limit=200)
        if r.case_ref == "FWI-553977"
    )
    notice = gw.outbox.envelope(
        sender="333",
        recipient="330",
        body=Notification(
            NotificationType.FAMILY_NOTICE,
            "FWI-553977",
            "Your case is moving",
            audience=Audience.FAMILY,
        ),
        correlation="FWI-553977" if named_by == "case reference" else thread,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    with pytest.raises(PolicyRefusal) as refused:
        outbound.accept_envelope(gw, "333", notice)
    assert refused.value.rule == "safeguarding.do-not-inform-family"
    assert all(
        r.status == Status.REJECTED for r in gw.ledger.find(message_id=notice.header.message_id)
    )


def test_a_funding_request_named_by_case_reference_goes_only_to_where_the_child_lives(
    tmp_path: Path,
) -> None:
    gw = _sandwell(tmp_path)
    request_ = gw.outbox.envelope(
        sender="333",
        recipient="334",
        body=Notification(NotificationType.FUNDING_REQUEST, "FWI-553901", "Please fund"),
        correlation="FWI-553901",
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    with pytest.raises(PolicyRefusal) as refused:
        outbound.accept_envelope(gw, "333", request_)
    assert refused.value.rule == "funding.residence"
    assert "(333)" in str(refused.value)


def test_a_received_family_notice_named_by_case_reference_is_quarantined(tmp_path: Path) -> None:
    gw = _sandwell(tmp_path)
    notice = gw.outbox.envelope(
        sender="333",
        recipient="330",
        body=Notification(
            NotificationType.FAMILY_NOTICE,
            "FWI-553977",
            "About your case",
            audience=Audience.FAMILY,
        ),
        correlation="FWI-553977",
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    gw.ledger.record([gw.outbox.sign(notice)])  # as if the sender had no such check
    pump(gw)
    (received,) = gw.ledger.find(
        message_id=notice.header.message_id, authority="330", direction=Direction.INBOUND
    )
    assert received.status == Status.QUARANTINED
    assert "safeguarding.do-not-inform-family" in (received.reason or "")


def test_every_copy_of_a_dispute_the_regional_groups_included_ends_resolved(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = dispute_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    for _ in range(3):  # coordinators, the regional group, then the line managers
        view = service.get_dispute(gw.kit, "332", raised.dispute_id)
        assert view.deadline is not None
        clock.set(view.deadline)
        service.escalate_due(gw.kit)
        drain(gw)
    service.resolve(gw.kit, "336", raised.dispute_id, "Line manager", "Agreed at last")
    drain(gw)
    for copy in ("332", "336", "regional"):
        view = service.get_dispute(gw.kit, copy, raised.dispute_id)
        assert view.resolved and view.outcome == "Agreed at last", copy
        assert view.stage.value == "LINE_MANAGERS", copy
        still_open = [
            e
            for e in escalations.for_dispute(gw.ledger, copy, raised.dispute_id)
            if e.kind == "ESCALATION"
            and e.status is not EscalationStatus.CLOSED
            and e.status is not EscalationStatus.ACKNOWLEDGED
        ]
        assert still_open == [], copy
    clock.advance(days=30)
    drain(gw)
    assert service.list_disputes(gw.kit, ["332", "336", "regional"], overdue=True) == []


def test_escalation_notices_arriving_after_a_quick_resolution_are_recorded_closed(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = dispute_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "no answer")
    service.resolve(gw.kit, "332", raised.dispute_id, "Karen Hale", "Sorted by phone")
    drain(gw)  # the resolved snapshot reaches 336's inbox before its coordinators' notice
    theirs = {
        (e.kind, e.status) for e in escalations.for_dispute(gw.ledger, "336", raised.dispute_id)
    }
    assert theirs == {
        ("ESCALATION", EscalationStatus.CLOSED),
        ("RESOLUTION", EscalationStatus.PENDING),
    }
    clock.advance(days=30)
    drain(gw)
    (closed,) = [
        e
        for e in escalations.for_dispute(gw.ledger, "336", raised.dispute_id)
        if e.kind == "ESCALATION"
    ]
    assert closed.status is EscalationStatus.CLOSED and closed.attempts == 1  # never re-sent


def test_the_same_record_under_a_new_id_reaches_the_local_system_once(tmp_path: Path) -> None:
    transport = MemoryTransport()
    keys = {"keys_dir": str(tmp_path / "keys")}  # one set of identities, each its own ledger
    sender = plain_gateway(tmp_path / "s", ("336",), transport=transport, **keys)
    receiver = plain_gateway(tmp_path / "r", ("335",), transport=transport, **keys)
    submit(sender, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "a.json")
    settle(sender, receiver)
    (first,) = [
        r
        for r in sender.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=200)
        if r.case_ref == "EHM-77120" and r.message_type == "Assessment"
    ]
    env = envelope_of(sender, first)
    assert env is not None and isinstance(env.body, Assessment)
    again = sender.outbox.envelope(
        sender="336",
        recipient="335",
        body=env.body,
        correlation=env.header.correlation_id,
        legal_basis=env.header.legal_basis,
        purpose=env.header.purpose,
        consent_ref=env.header.consent_ref,
    )
    sender.ledger.record([sender.outbox.sign(again)])  # as a buggy or hostile sender would
    settle(sender, receiver)
    copies = [
        r
        for r in receiver.ledger.find(authority="335", direction=Direction.INBOUND, limit=200)
        if r.case_ref == "EHM-77120" and r.message_type == "Assessment"
    ]
    assert sorted(r.status.value for r in copies) == ["DUPLICATE", "VERIFIED"]
    assert len([i for i in receiver.ledger.inbox("335") if i.message_type == "Assessment"]) == 1
    (resent,) = sender.ledger.find(message_id=again.header.message_id, authority="336")
    assert resent.status == Status.DELIVERED  # receipted as a duplicate: not lost, not re-sent


def test_two_publishers_on_one_ledger_never_publish_a_message_twice(tmp_path: Path) -> None:
    transport = MemoryTransport()
    one = plain_gateway(tmp_path, ("336", "335"), transport=transport)
    other = plain_gateway(tmp_path, ("336", "335"), transport=transport)  # the same ledger
    transport.declare(ALL)  # every recipient has a queue: nothing comes back unroutable
    submit(one, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "a.json")
    queued = len(one.ledger.find(status=Status.SIGNED, limit=500))
    assert queued > 5
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def publish(gw: Gateway) -> None:
        barrier.wait()
        counts.append(delivery.publish_outbox(gw).confirmed)

    threads = [threading.Thread(target=publish, args=(g,)) for g in (one, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    published = sum(transport.depth(one.topology.inbox(code)) for code in ALL)
    assert sum(counts) == queued == published
