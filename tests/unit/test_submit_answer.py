"""A submitted export's answer is written batch by batch as records are accepted,
and is byte for byte what the route's response model wrote when it was built at
the end (issue 14: the whole answer's objects at once cost 25 MB at 10,000 records)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from policy_support import DUDLEY, memory_gateway
from pydantic import TypeAdapter
from sqlalchemy import func, select

from gateway.api import submit_answer
from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.schemas import RecordOut, SubmitOut
from gateway.api.submit_answer import SerializedReport
from gateway.context import Gateway
from gateway.ledger.status import Status
from gateway.ledger.tables import messages
from gateway.services import outbound
from gateway.services.outbound import RecordOutcome, SubmitReport

pytestmark = pytest.mark.timeout(120)

AS_THE_ROUTE_WROTE_IT = TypeAdapter(SubmitOut | RecordOut)


def _register(records: int) -> bytes:
    """The Dudley sample's rows repeated ``records`` times, each with its own case reference."""
    lines = [line for line in DUDLEY.read_bytes().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    out = [header]
    for n in range(records):
        _ref, rest = rows[n % len(rows)].split(b",", 1)
        out.append(b"DUD-B%08d," % n + rest)
    return b"\r\n".join(out) + b"\r\n"


class _Kept(SerializedReport):
    """Serializes as the API does, and keeps the outcomes to compare with."""

    def __init__(self, source: str, gw: Gateway | None = None) -> None:
        super().__init__(source)
        self.kept = SubmitReport(source)
        self.gw = gw
        self.batches: list[tuple[int, int]] = []  # (outcomes, messages in the ledger then)

    def add(self, outcomes: list[RecordOutcome]) -> None:
        super().add(outcomes)
        self.kept.add(outcomes)
        if self.gw is not None:
            with self.gw.ledger.transaction() as conn:
                recorded = conn.execute(select(func.count()).select_from(messages)).scalar_one()
            self.batches.append((len(outcomes), recorded))


def test_the_answer_is_the_bytes_the_response_model_wrote_for_every_outcome(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    report = _Kept("caf-register-2026-09.csv")
    with DUDLEY.open("rb") as stream:
        outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name, report=report)
    statuses = {o.status for o in report.kept.outcomes}
    assert {Status.SIGNED, Status.HELD_LOCAL, Status.REJECTED} <= statuses
    assert any(o.kind == "notices" for o in report.kept.outcomes)
    before = AS_THE_ROUTE_WROTE_IT.dump_json(SubmitOut.of(report.kept), by_alias=True)
    assert report.body() == before
    assert (report.queued, report.held, report.rejected) == (
        report.kept.queued,
        report.kept.held,
        report.kept.rejected,
    )


def test_awkward_text_and_an_empty_export_are_written_as_the_response_model_wrote_them() -> None:
    awkward = RecordOutcome(
        'row 7 "quoted", é, \u2028 and a\nnewline \\ </script>',
        None,
        Status.REJECTED,
        ("id-1",),
        (),
        ("x.csv:7:upn: “not a UPN” – ☃", "second reason"),
    )
    notices = RecordOutcome(
        "8:notices", "DUD-1", Status.SIGNED, ("a", "b"), ("333", "336"), (), "notices"
    )
    for batches in ([], [[awkward]], [[awkward, notices], [notices], [awkward]]):
        report, kept = SerializedReport("dudley, “2026”.csv"), SubmitReport("dudley, “2026”.csv")
        for batch in batches:
            report.add(batch)
            kept.add(batch)
        assert report.body() == AS_THE_ROUTE_WROTE_IT.dump_json(SubmitOut.of(kept), by_alias=True)


def test_each_batch_reaches_the_report_as_soon_as_it_is_accepted(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    report = _Kept("register.csv", gw)
    outbound.submit_local(
        gw, "332", "dudley-csv", io.BytesIO(_register(450)), "r.csv", report=report
    )
    # Three batches (200, 200, 50 records), each handed over when it was in the ledger and
    # before the next was converted: nothing waits for the whole export.
    assert len(report.batches) == 3
    recorded = [n for _, n in report.batches]
    assert recorded == sorted(recorded) and len(set(recorded)) == 3
    assert sum(o.kind == "record" for o in report.kept.outcomes) == 450
    assert report.queued + report.held + report.rejected == 450


def _submit_register(tmp_path: Path, records: int) -> httpx.Response:
    """POST a Dudley export of ``records`` rows to a gateway's API as 332."""
    gw = memory_gateway(tmp_path)
    keys = ApiKeys(tmp_path / "api-keys.json")
    client = TestClient(create_app(gw, keys))
    answer: httpx.Response = client.post(
        "/v1/messages",
        params={"adapter": "dudley-csv", "source": "register.csv"},
        content=_register(records),
        headers={"Authorization": "Bearer " + keys.issue("332")},
    )
    return answer


def test_the_api_answers_an_export_with_every_record_and_the_counts(tmp_path: Path) -> None:
    answer = _submit_register(tmp_path, 450)
    assert answer.status_code == 202, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    records = [r for r in body["records"] if not r["record"].endswith(":notices")]
    assert len(records) == 450 and body["source"] == "register.csv"
    for key, status in (("queued", "SIGNED"), ("held", "HELD_LOCAL"), ("rejected", "REJECTED")):
        assert body[key] == sum(r["status"] == status for r in records) > 0
    assert SubmitOut.model_validate(body).records[0].record == records[0]["record"]


def test_the_api_sends_the_answer_as_kept_with_its_length_and_no_chunked_encoding(
    tmp_path: Path,
) -> None:
    # Sent batch by batch (never joined into one more copy), yet the same bytes and
    # headers as the joined Response gave: Content-Length, no Transfer-Encoding.
    sent: list[_Kept] = []

    class _Spy(_Kept):
        def __init__(self, source: str) -> None:
            super().__init__(source)
            sent.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gateway.api.routes.messages.SerializedReport", _Spy)
        answer = _submit_register(tmp_path, 450)
    assert answer.status_code == 202, answer.text
    (report,) = sent
    assert answer.content == report.body()
    assert answer.content == AS_THE_ROUTE_WROTE_IT.dump_json(
        SubmitOut.of(report.kept), by_alias=True
    )
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.content))
    assert "transfer-encoding" not in answer.headers


def test_an_answer_larger_than_its_memory_is_kept_on_disk_and_sent_as_the_model_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 10,000-record answer is 5 MB: beyond ANSWER_MEMORY_BYTES it goes to an
    # unlinked temporary file, so a process's peak no longer grows with the export.
    monkeypatch.setattr(submit_answer, "ANSWER_MEMORY_BYTES", 4096)
    sent: list[_Kept] = []

    class _Spy(_Kept):
        def __init__(self, source: str) -> None:
            super().__init__(source)
            sent.append(self)

    monkeypatch.setattr("gateway.api.routes.messages.SerializedReport", _Spy)
    answer = _submit_register(tmp_path, 450)

    assert answer.status_code == 202, answer.text
    (report,) = sent
    assert report._records._rolled  # type: ignore[attr-defined]  # on disk, not in memory
    assert len(answer.content) > 10 * 4096
    assert answer.content == AS_THE_ROUTE_WROTE_IT.dump_json(
        SubmitOut.of(report.kept), by_alias=True
    )
    assert answer.headers["content-length"] == str(len(answer.content))
