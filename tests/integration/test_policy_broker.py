"""Consent withdrawal and a safeguarding referral between real gateways over
the real RabbitMQ: the exact messages, their bases and their delivery."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[1] / "data"
WOLVERHAMPTON = DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json"
SANDWELL = DATA / "sandwell-333" / "fwi-forms-20261005.xml"


def _ehm_77245(withdrawn: bool) -> bytes:
    data = json.loads(WOLVERHAMPTON.read_text(encoding="utf-8"))
    data["episodes"] = [e for e in data["episodes"] if e["episodeId"] == "EHM-77245"]
    if not withdrawn:
        data["episodes"][0]["consent"]["withdrawn"] = []
        data["episodes"][0]["events"] = []
    return json.dumps(data).encode()


def _settled(gw: object, ids: list[str]) -> bool:
    rows = [r for m in ids for r in gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)]  # type: ignore[attr-defined]
    return len(rows) == len(ids) and all(r.status == Status.DELIVERED for r in rows)


def _sent(report: outbound.SubmitReport) -> list[str]:
    return [m for o in report.outcomes if o.status == Status.SIGNED for m in o.message_ids]


def test_a_withdrawal_reaches_dudley_which_restricts_the_child_and_gets_nothing_personal_after(
    tmp_path: Path, vhost: str
) -> None:
    sender = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 's.db'}", vhost)
    receiver = make_settings(tmp_path, ("332",), f"sqlite:///{tmp_path / 'r.db'}", vhost)
    with running(receiver) as dudley, running(sender) as wolves:
        first = outbound.submit_local(
            wolves, "336", "wolverhampton-json", io.BytesIO(_ehm_77245(False)), "before.json"
        )
        wait_for(
            lambda: _settled(
                wolves,
                [m for m in _sent(first) if wolves.ledger.find(message_id=m)[0].recipient == "332"],
            ),
            what="the first share delivered to Dudley",
        )
        received = [
            r
            for r in dudley.ledger.find(authority="332", direction=Direction.INBOUND)
            if r.message_type in ("Assessment", "ConsentChange")
        ]
        assert len(received) == 2
        second = outbound.submit_local(
            wolves, "336", "wolverhampton-json", io.BytesIO(_ehm_77245(True)), "after.json"
        )
        to_dudley = [
            m for m in _sent(second) if wolves.ledger.find(message_id=m)[0].recipient == "332"
        ]
        wait_for(lambda: _settled(wolves, to_dudley), what="the withdrawal delivered")
        rows = [wolves.ledger.find(message_id=m)[0] for m in to_dudley]
        assert sorted((r.message_type, r.legal_basis) for r in rows) == [
            ("ConsentChange", "CONSENT_WITHDRAWAL"),
            ("Notification", "NO_PERSONAL_DATA"),
        ]
        (held,) = [o for o in second.outcomes if o.kind == "record"]
        assert held.status == Status.HELD_LOCAL
        for r in received:
            (now,) = dudley.ledger.find(
                message_id=r.message_id, authority="332", direction=Direction.INBOUND
            )
            assert now.restricted
        served = {i.message_id for i in dudley.ledger.inbox("332")}
        assert not served & {r.message_id for r in received}
        assert {m for m in to_dudley} <= served


def test_fwi_553977_reaches_birmingham_on_the_safeguarding_basis_over_the_broker(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("330", "333"), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    with running(settings) as gw:
        report = outbound.submit_local(
            gw, "333", "sandwell-xml", io.BytesIO(SANDWELL.read_bytes()), SANDWELL.name
        )
        ids = [
            m
            for o in report.outcomes
            if o.case_ref == "FWI-553977" and o.status == Status.SIGNED
            for m in o.message_ids
        ]
        wait_for(lambda: _settled(gw, ids), what="FWI-553977 messages delivered")
        rows = sorted(
            (r.recipient, r.legal_basis)
            for m in ids
            for r in gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)
        )
        assert rows == [("330", "SAFEGUARDING"), ("333", "NO_PERSONAL_DATA")]
        (referral,) = [r for r in gw.ledger.inbox("330") if r.message_id in ids]
        assert (
            b"<Approver>Jo Franklin</Approver>" in referral.body or b"Jo Franklin" in referral.body
        )
