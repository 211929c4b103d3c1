"""The regional issues log: every authority's copy, and no personal data in any entry."""

from __future__ import annotations

import io
import uuid
from datetime import date
from pathlib import Path

import pytest
from policy_support import ALL, DUDLEY, SANDWELL, WOLVERHAMPTON, memory_gateway, pump, submit

from adapters.base import Converted
from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.ledger.store import utc_now
from gateway.model import Child, Envelope, IssueKind, IssueLogEntry, LegalBasis, Purpose
from gateway.outbox import new_envelope
from gateway.policy import issues_log
from gateway.services import outbound, views

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    gw = memory_gateway(tmp_path_factory.mktemp("issues"))
    for authority, adapter, path in (
        ("332", "dudley-csv", DUDLEY),
        ("336", "wolverhampton-json", WOLVERHAMPTON),
        ("333", "sandwell-xml", SANDWELL),
    ):
        submit(gw, authority, adapter, path.read_bytes(), path.name)
    pump(gw)
    return gw


def _sample_children(gw: Gateway) -> list[Child]:
    found = []
    for adapter, path in (
        ("dudley-csv", DUDLEY),
        ("wolverhampton-json", WOLVERHAMPTON),
        ("sandwell-xml", SANDWELL),
    ):
        for result in gw.adapters.get(adapter).read(io.BytesIO(path.read_bytes()), path.name):
            if isinstance(result, Converted):
                found.append(result.assessment.child)
    return found


def test_the_fwi_553901_service_gap_is_in_every_authoritys_copy_of_the_log(region: Gateway) -> None:
    for code in ALL:
        (logged,) = views.issues_of(region, code)
        entry = logged.entry
        assert (entry.kind, entry.reported_by_la, entry.concerns_la) == (
            IssueKind.SERVICE_GAP,
            "333",
            "334",
        )
        assert entry.description == "No dyslexia outreach service for out-of-area pupils"
        assert logged.received_from == (None if code == "333" else "333")


def test_no_entry_carries_a_name_identifier_date_of_birth_or_postcode_of_any_sample_child(
    region: Gateway,
) -> None:
    children = _sample_children(region)
    assert len(children) == 7
    entries = [i.entry for code in ALL for i in views.issues_of(region, code)]
    assert entries
    for entry in entries:
        text = " ".join(str(v) for v in entry.__dict__.values() if v is not None)
        folded = text.casefold().replace(" ", "")
        for child in children:
            values = [child.given_name, child.family_name, *(i.value for i in child.identifiers)]
            if child.date_of_birth:
                dob = child.date_of_birth
                values += [dob.isoformat(), dob.strftime("%d/%m/%Y"), dob.strftime("%d-%b-%Y")]
            if child.address and child.address.postcode:
                values.append(child.address.postcode)
            for value in values:
                assert value.casefold().replace(" ", "") not in folded, entry.entry_id


def test_an_entry_with_personal_data_is_refused(region: Gateway) -> None:
    child = _sample_children(region)[0]
    entry = IssueLogEntry(
        "ISS-1",
        IssueKind.CROSS_BORDER_RISK,
        "332",
        "336",
        f"No school place for {child.given_name} at WV14 0QL",
        date(2026, 10, 1),
    )
    with pytest.raises(PolicyRefusal) as refused:
        issues_log.check(entry, (child,))
    assert refused.value.rule == "issues-log.personal-data"
    assert "postcode" in refused.value.reason and child.given_name not in refused.value.reason


def test_a_service_gap_naming_the_child_is_not_logged(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    data = SANDWELL.read_bytes().replace(b"for out-of-area pupils", b"for Adeyemi")
    report = submit(gw, "333", "sandwell-xml", data, "fwi.xml")
    refused = [o for o in report.outcomes if o.kind == "notices" and o.status.value == "REJECTED"]
    assert [r.split(":")[0] for o in refused for r in o.reasons] == ["issues-log.personal-data"]
    pump(gw)
    assert all(views.issues_of(gw, code) == [] for code in ALL)


def _risk_envelope(
    reporter: str, recipient: str, description: str, sender: str = "333"
) -> Envelope:
    entry = IssueLogEntry(
        entry_id=f"{reporter}-RISK-2026-001",
        kind=IssueKind.CROSS_BORDER_RISK,
        reported_by_la=reporter,
        concerns_la="335",
        description=description,
        raised_on=date(2026, 10, 20),
    )
    return new_envelope(
        utc_now,
        sender=sender,
        recipient=recipient,
        body=entry,
        correlation=str(uuid.uuid4()),
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        purpose=Purpose.COORDINATION,
    )


def test_a_submitted_cross_border_risk_reaches_every_authoritys_copy_of_the_log(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    text = "Walsall family hub waiting list exceeds 12 weeks for out-of-area referrals"
    outbound.accept_envelope(gw, "333", _risk_envelope("333", "334", text))
    pump(gw)
    for code in ALL:
        risks = [
            i for i in views.issues_of(gw, code) if i.entry.kind == IssueKind.CROSS_BORDER_RISK
        ]
        assert [(r.entry.description, r.received_from) for r in risks] == [
            (text, None if code == "333" else "333")
        ]


def test_a_risk_entry_claiming_another_reporter_or_carrying_personal_data_is_refused(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    with pytest.raises(PolicyRefusal) as forged:
        outbound.accept_envelope(gw, "333", _risk_envelope("336", "334", "Waiting lists"))
    assert forged.value.rule == issues_log.RULE_REPORTER
    with pytest.raises(PolicyRefusal) as personal:
        outbound.accept_envelope(
            gw, "333", _risk_envelope("333", "334", "Risk for the child with UPN L333200216031")
        )
    assert personal.value.rule == issues_log.RULE_PERSONAL_DATA
    assert not views.issues_of(gw, "333")
