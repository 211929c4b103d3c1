"""A Dudley CSV record travels, signed, over the real RabbitMQ and comes back
as a signed receipt; on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DUDLEY = Path(__file__).resolve().parents[1] / "data" / "dudley-332" / "caf-register-2026-09.csv"


def _submit(gw: object) -> outbound.SubmitReport:
    with DUDLEY.open("rb") as stream:
        return outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)  # type: ignore[arg-type]


def _row(report: outbound.SubmitReport, case: str) -> outbound.RecordOutcome:
    return next(o for o in report.outcomes if o.case_ref == case)


def test_dudley_row_1_reaches_wolverhampton_and_sandwell_and_is_delivered(
    tmp_path: Path, vhost: str, ledger_url: str
) -> None:
    sender_settings = make_settings(tmp_path / "dudley", ("332",), ledger_url, vhost)
    receiver_url = f"sqlite:///{tmp_path / 'receiver.db'}"
    receiver_settings = make_settings(tmp_path / "dudley", ("333", "336"), receiver_url, vhost)
    with running(receiver_settings) as receiver, running(sender_settings) as sender:
        report = _submit(sender)
        row1 = _row(report, "DUD-2026-00417")
        assert row1.status == Status.SIGNED
        assert sorted(row1.recipients) == ["333", "336"]

        def all_delivered() -> bool:
            records = [
                r
                for m in row1.message_ids
                for r in sender.ledger.find(message_id=m, direction=Direction.OUTBOUND)
            ]
            return len(records) == len(row1.message_ids) and all(
                r.status == Status.DELIVERED for r in records
            )

        wait_for(all_delivered, what="receipts for Dudley row 1")
        for message_id in row1.message_ids:
            (record,) = sender.ledger.find(message_id=message_id, direction=Direction.OUTBOUND)
            assert [h.status for h in record.history] == [
                Status.ACCEPTED,
                Status.SIGNED,
                Status.SENT,
                Status.DELIVERED,
            ]
        for code in ("333", "336"):
            inbox = receiver.ledger.inbox(code)
            received = {i.message_id for i in inbox}
            mine = {
                m
                for m in row1.message_ids
                if sender.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].recipient
                == code
            }
            assert mine and mine <= received
            assert all(i.status == Status.VERIFIED for i in inbox if i.message_id in mine)
            assert {i.message_type for i in inbox if i.message_id in mine} == {
                "Assessment",
                "ConsentChange",
            }


def test_dudley_row_3_without_consent_is_held_local_and_sent_nowhere(
    tmp_path: Path, vhost: str, ledger_url: str
) -> None:
    settings = make_settings(tmp_path, ("332", "333", "336"), ledger_url, vhost)
    with running(settings) as gw:
        report = _submit(gw)
        row3 = _row(report, "DUD-2026-00419")
        assert row3.status == Status.HELD_LOCAL
        assert row3.recipients == ()
        (held,) = gw.ledger.find(message_id=row3.message_ids[0])
        assert [h.status for h in held.history] == [Status.ACCEPTED, Status.HELD_LOCAL]
        assert held.recipient == "332"
        row1 = _row(report, "DUD-2026-00417")
        wait_for(
            lambda: all(
                gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].status
                == Status.DELIVERED
                for m in row1.message_ids
            ),
            what="row 1 delivered (so the inboxes have settled)",
        )
        for code in ("333", "336"):
            cases = {i.correlation_id for i in gw.ledger.inbox(code)}
            assert held.correlation_id not in cases


def test_bad_dudley_row_is_rejected_with_every_problem_and_never_published(
    tmp_path: Path, vhost: str, ledger_url: str
) -> None:
    settings = make_settings(tmp_path, ("332", "333", "336"), ledger_url, vhost)
    with running(settings) as gw:
        report = _submit(gw)
        bad = next(o for o in report.outcomes if o.status == Status.REJECTED)
        assert bad.record == "5"
        columns = {reason.split(":")[2] for reason in bad.reasons}
        assert columns == {
            "UPN",
            "NHS_NO",
            "DOB",
            "GENDER",
            "POSTCODE",
            "HOME_LA",
            "DATE_STARTED",
            "CONSENT_GIVEN",
            "SHARE_XBORDER",
            "INITIATED_BY",
        }
        assert all(reason.startswith("caf-register-2026-09.csv:5:") for reason in bad.reasons)
        (record,) = gw.ledger.find(message_id=bad.message_ids[0])
        assert record.status == Status.REJECTED
        assert gw.ledger.body_of("332", Direction.OUTBOUND, bad.message_ids[0]) is None
        row1 = _row(report, "DUD-2026-00417")
        wait_for(
            lambda: all(
                gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].status
                == Status.DELIVERED
                for m in row1.message_ids
            ),
            what="row 1 delivered",
        )
        sent_ids = {m for o in report.outcomes if o.status == Status.SIGNED for m in o.message_ids}

        def received() -> set[str]:
            inbound = gw.ledger.find(direction=Direction.INBOUND, limit=1000, with_history=False)
            return {r.message_id for r in inbound if r.message_type != "Receipt"}

        # Row 1 delivered says nothing of the other rows' messages, which may still be on
        # their way on a busy machine (seen once under the full suite): wait for them all.
        wait_for(lambda: received() >= sent_ids, what="every signed message received")
        assert received() == sent_ids  # and nothing else: the rejected row never went out
