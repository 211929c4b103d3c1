"""Significant harm: the SAFEGUARDING basis only with approver and reason, always
audited, never downgraded; where the family must not be told, no family notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import SANDWELL, envelope_of, memory_gateway, pump, submit

from gateway.errors import PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.model import Audience, LegalBasis, Notification, NotificationType, Purpose
from gateway.services import outbound

pytestmark = pytest.mark.timeout(120)


def _only_977() -> bytes:
    text = SANDWELL.read_bytes().decode("iso-8859-1")
    start = text.index('<Form id="FWI-553901"')
    end = text.index('<Form id="FWI-553977"')
    return (text[:start] + text[end:]).encode("iso-8859-1")


def test_fwi_553977_notifies_birmingham_on_the_safeguarding_basis_with_an_audited_approval(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    report = submit(gw, "333", "sandwell-xml", _only_977(), "fwi.xml")
    pump(gw)
    (record,) = [o for o in report.outcomes if o.kind == "record"]
    assert record.recipients == ("330",)
    (sent,) = gw.ledger.find(message_id=record.message_ids[0], authority="333")
    assert (sent.legal_basis, sent.purpose, sent.status) == (
        "SAFEGUARDING",
        "SAFEGUARDING_REFERRAL",
        Status.DELIVERED,
    )
    env = envelope_of(gw, sent)
    assert env is not None and env.header.safeguarding is not None
    assert env.header.safeguarding.approver == "Jo Franklin"
    assert "further risk" in env.header.safeguarding.reason
    overrides = [e for e in audit.entries(gw.ledger) if e.event.action == "SAFEGUARDING_OVERRIDE"]
    assert [(e.event.actor, e.event.counterparty, e.event.message_id) for e in overrides] == [
        ("Jo Franklin", "330", sent.message_id)
    ]
    assert audit.verify(gw.ledger) == []


def test_no_family_facing_notice_is_generated_anywhere_when_the_family_must_not_be_told(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "333", "sandwell-xml", _only_977(), "fwi.xml")
    pump(gw)
    everything = gw.ledger.find(limit=1000, with_history=False)
    for record in everything:
        env = envelope_of(gw, record)
        if env is not None and isinstance(env.body, Notification):
            assert env.body.audience != Audience.FAMILY
    thread = next(r.correlation_id for r in everything if r.case_ref == "FWI-553977")
    for sender, recipient in (("333", "333"), ("333", "330")):
        notice = gw.outbox.envelope(
            sender=sender,
            recipient=recipient,
            body=Notification(
                NotificationType.FAMILY_NOTICE,
                "FWI-553977",
                "About your case",
                audience=Audience.FAMILY,
            ),
            correlation=thread,
            legal_basis=LegalBasis.NO_PERSONAL_DATA,
            purpose=Purpose.COORDINATION,
        )
        with pytest.raises(PolicyRefusal) as refused:
            outbound.accept_envelope(gw, sender, notice)
        assert refused.value.rule == "safeguarding.do-not-inform-family"
        (row,) = gw.ledger.find(message_id=notice.header.message_id, authority=sender)
        assert row.status == Status.REJECTED and "do-not-inform-family" in (row.reason or "")


def test_birmingham_refuses_a_family_notice_for_a_referral_that_says_do_not_inform(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "333", "sandwell-xml", _only_977(), "fwi.xml")
    pump(gw)
    thread = next(
        r.correlation_id
        for r in gw.ledger.find(authority="330", limit=50)
        if r.message_type == "Notification"
    )

    notice = gw.outbox.envelope(
        sender="333",
        recipient="330",
        body=Notification(
            NotificationType.FAMILY_NOTICE, None, "About your case", audience=Audience.FAMILY
        ),
        correlation=thread,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    gw.ledger.record([gw.outbox.sign(notice)])  # as if the sender had no such rule
    pump(gw)
    (received,) = gw.ledger.find(
        message_id=notice.header.message_id, authority="330", direction=Direction.INBOUND
    )
    assert received.status == Status.QUARANTINED
    assert "safeguarding.do-not-inform-family" in (received.reason or "")


def test_a_significant_harm_record_without_an_approver_is_refused_and_never_downgraded(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    data = _only_977().replace(b'decidedBy="Jo Franklin" ', b"")
    report = submit(gw, "333", "sandwell-xml", data, "fwi.xml")
    (record,) = [o for o in report.outcomes if o.kind == "record"]
    assert record.status == Status.REJECTED
    assert record.reasons[0].startswith("safeguarding.approval")
    pump(gw)
    assert gw.ledger.find(authority="330", direction=Direction.INBOUND, limit=10) == []
    assert [e for e in audit.entries(gw.ledger) if e.event.action == "SAFEGUARDING_OVERRIDE"] == []
