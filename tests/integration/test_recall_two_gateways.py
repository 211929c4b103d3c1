"""Recall, correction and erasure requests between separate gateways on the real broker.

Dudley (332), Sandwell (333) and Wolverhampton (336) each run their own gateway with
their own ledger and keys (``sovereignty_region``). Sandwell's local system pulls
(and has not pulled yet), or, in the last test, takes webhook POSTs;
Wolverhampton's takes files from a drop directory. Dudley
shares its sample export (DUD-2026-00417 goes to both), then recalls, corrects or
erases; each recipient's gateway acts and proves it in its signed receipt, and Dudley
sees the outcome per recipient. Wolverhampton, authenticated but hostile, cannot
recall what Dudley sent to Sandwell. Wolverhampton sends access notices: Dudley's
history shows when its record was taken there.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from local_systems import WebhookReceiver, secret_file
from retention_support import SIOBHAN, found_in

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.feature import ApplyContext
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import outcomes, sender, standing
from gateway.model import (
    ActionTaken,
    Assessment,
    Envelope,
    ErasureGround,
    ErasureRequest,
    LegalBasis,
    MessageRef,
    MessageType,
    Recall,
    RecallReason,
    Receipt,
)
from gateway.retention import erasure
from gateway.services import dead_letters
from gateway.services.receiving import pipeline
from gateway.services.receiving.checks import Passed
from tests.integration.gateways import wait_for
from tests.integration.sovereignty_region import DUDLEY, Region, region

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@dataclass
class Shared:
    """The region after Dudley shared row 1, and Wolverhampton's drop directory."""

    r: Region
    drop: Path
    taken: Path


def _file_drop(drop: Path):  # type: ignore[no-untyped-def]
    def configure(code: str, config: Path) -> None:
        if code != "336":
            return
        path = config / "authorities.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["authorities"]["336"]["connector"] = {"kind": "file", "directory": str(drop)}
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        # Wolverhampton tells senders when their records are opened, every second.
        gateway = config / "gateway.yaml"
        settings = yaml.safe_load(gateway.read_text(encoding="utf-8"))
        settings["authority_delivery"] = {
            "336": {"access_notices": True, "access_notice_batch_s": 1}
        }
        gateway.write_text(yaml.safe_dump(settings), encoding="utf-8")

    return configure


def _sent(r: Region, recipient: str, kind: str = "Assessment") -> MessageRecord:
    return next(
        x
        for x in r.gw("332").ledger.find(authority="332", direction=Direction.OUTBOUND, limit=500)
        if x.recipient == recipient and x.message_type == kind
    )


def _copy(r: Region, code: str, message_id: str) -> MessageRecord:
    [row] = r.gw(code).ledger.find(message_id=message_id, authority=code)
    return row


def _envelope(r: Region, code: str, row: MessageRecord) -> Envelope:
    data = r.gw(code).ledger.body_of(code, row.direction, row.message_id)
    assert data is not None
    return element_to_envelope(xmlsafe.parse(data, max_bytes=10_000_000, max_depth=64))


def _outcome(
    r: Region, original: str | None = None, kind: str = "RECALL"
) -> outcomes.RecallOutcome:
    """Dudley's outcome of its recall (correction, erasure) once the recipient said what it did."""
    found: list[outcomes.RecallOutcome] = []

    def said() -> bool:
        with r.gw("332").ledger.transaction() as conn:
            got = [o for o in outcomes.outcomes_of(conn, "332", original) if o.kind == kind]
        found[:] = got
        return bool(got) and all(o.action is not None for o in got)

    wait_for(said, timeout_s=20, what=f"the recipient's receipt for the {kind.lower()}")
    return found[0]


def _take_files(s: Shared, *message_ids: str) -> None:
    """Wolverhampton's local system takes these files away; its gateway then records it."""
    for message_id in message_ids:
        wait_for(lambda m=message_id: (s.drop / f"{m}.xml").exists(), what=f"{message_id}.xml")
        shutil.move(s.drop / f"{message_id}.xml", s.taken / f"{message_id}.xml")
    for message_id in message_ids:
        wait_for(
            lambda m=message_id: _copy(s.r, "336", m).status == Status.ACKNOWLEDGED,
            what="Wolverhampton's gateway to see the file taken",
        )


@pytest.fixture
def shared(tmp_path: Path, vhost: str) -> Iterator[Shared]:
    drop, taken = tmp_path / "drop-336", tmp_path / "taken-336"
    drop.mkdir()
    taken.mkdir()
    with region(tmp_path / "region", vhost, _file_drop(drop)) as r:
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        wait_for(
            lambda: all(
                _sent(r, code, kind).status == Status.DELIVERED
                for code in ("333", "336")
                for kind in ("Assessment", "ConsentChange")
            ),
            what="row 1 delivered to Sandwell and Wolverhampton",
        )
        yield Shared(r, drop, taken)


def test_a_recall_before_handover_withdraws_the_copy_and_the_sender_sees_it(
    shared: Shared,
) -> None:
    r = shared.r
    original = _sent(r, "333")
    assert _copy(r, "333", original.message_id).status == Status.VERIFIED  # not pulled
    done = sender.recall(r.gw("332"), "332", original.message_id, RecallReason.MISDIRECTED)
    got = _outcome(r, original.message_id)
    assert got.outcome == "DELIVERED" and got.action == ActionTaken.WITHDRAWN.value
    assert got.handed_over_at is None
    assert "withdrawn before its local system had it" in got.describe()
    copy = _copy(r, "333", original.message_id)
    assert copy.status == Status.WITHDRAWN
    served = {i.message_id for i in r.gw("333").ledger.inbox("333")}
    assert original.message_id not in served and done.message_id not in served
    history = _copy(r, "332", original.message_id).history
    assert any("recall outcome at 333: withdrawn" in (h.reason or "") for h in history)


def test_a_recall_after_handover_tells_the_local_system_and_the_receipt_has_the_date(
    shared: Shared,
) -> None:
    r = shared.r
    original = _sent(r, "336")
    _take_files(shared, original.message_id)
    handed = next(
        h.at
        for h in _copy(r, "336", original.message_id).history
        if h.status == Status.DELIVERED_LOCAL
    )
    done = sender.recall(r.gw("332"), "332", original.message_id, RecallReason.WRONG_CHILD)
    got = _outcome(r, original.message_id)
    assert got.action == ActionTaken.PASSED_ON.value and got.handed_over_at is not None
    assert abs((got.handed_over_at - handed).total_seconds()) < 1
    assert f"handed over {got.handed_over_at.isoformat(timespec='seconds')}" in got.describe()
    # The local system is told through its connector: the recall arrives as a file.
    assert done.message_id is not None
    notice = shared.drop / f"{done.message_id}.xml"
    wait_for(notice.exists, what="the recall in Wolverhampton's drop directory")
    assert original.message_id.encode() in notice.read_bytes()
    assert any(h.status == Status.RECALLED for h in _copy(r, "336", original.message_id).history)


def test_a_recall_from_a_third_authority_is_refused_and_recorded(shared: Shared) -> None:
    r = shared.r
    original = _sent(r, "333")
    hostile = r.envelope(
        "336",
        "333",
        Recall(MessageRef(original.message_id, original.digest or ""), RecallReason.MISDIRECTED),
        correlation=original.correlation_id,
        basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=original.message_id,
    )
    message_id = r.publish(hostile)
    refused = r.received("333", message_id)
    wait_for(lambda: _copy(r, "333", message_id).status == Status.QUARANTINED, what="quarantined")
    refused = _copy(r, "333", message_id)
    assert "recall.not-the-sender" in (refused.reason or "")
    assert _copy(r, "333", original.message_id).status == Status.VERIFIED  # untouched

    def told() -> bool:
        for row in r.gw("336").ledger.find(authority="336", direction=Direction.INBOUND):
            if row.message_type == "Receipt" and row.sender == "333":
                body = _envelope(r, "336", row).body
                assert isinstance(body, Receipt)
                if any(i.message_id == message_id for i in body.items):
                    [item] = [i for i in body.items if i.message_id == message_id]
                    assert item.outcome.value == "REJECTED" and item.action is None
                    return True
        return False

    wait_for(told, what="Wolverhampton's REJECTED receipt")


def test_a_correction_supersedes_the_original_at_each_recipient(shared: Shared) -> None:
    r = shared.r
    gw = r.gw("332")
    to_336, to_333 = _sent(r, "336"), _sent(r, "333")
    _take_files(shared, to_336.message_id)
    fixes = {}
    for original in (to_336, to_333):
        body = _envelope(r, "332", original).body
        assert isinstance(body, Assessment)
        fixes[original.recipient] = sender.correct(
            gw, "332", original.message_id, replace(body, needs="GP review"), "needs", "Jo"
        )
    at_336 = _outcome(r, to_336.message_id, "CORRECTION")
    assert at_336.action == ActionTaken.PASSED_ON.value and at_336.handed_over_at is not None
    history = _copy(r, "336", to_336.message_id).history
    assert any(h.status == Status.SUPERSEDED for h in history)
    corrected = shared.drop / f"{fixes['336'].message_id}.xml"
    wait_for(corrected.exists, what="the corrected record in Wolverhampton's drop")
    assert b"GP review" in corrected.read_bytes()
    at_333 = _outcome(r, to_333.message_id, "CORRECTION")
    assert at_333.action == ActionTaken.WITHDRAWN.value
    served = {i.message_id for i in r.gw("333").ledger.inbox("333")}
    assert fixes["333"].message_id in served and to_333.message_id not in served


def test_an_erasure_request_erases_the_copies_and_each_receipt_proves_it(
    shared: Shared,
) -> None:
    r = shared.r
    _take_files(shared, _sent(r, "336").message_id, _sent(r, "336", "ConsentChange").message_id)
    erasure.erase_child(
        r.gw("332"),
        "332",
        SIOBHAN[1],
        ground=ErasureGround.CONSENT_WITHDRAWN,
        reference="DPO/2026/301",
        actor="Dudley DPO",
    )

    def both() -> list[outcomes.RecallOutcome]:
        with r.gw("332").ledger.transaction() as conn:
            return [o for o in outcomes.outcomes_of(conn, "332") if o.kind == "ERASURE"]

    wait_for(
        lambda: len(both()) == 2 and all(o.action for o in both()), what="both erasure receipts"
    )
    got = {o.recipient: o for o in both()}
    assert got["333"].action == got["336"].action == ActionTaken.ERASED.value
    assert got["333"].handed_over_at is None  # Sandwell's system never had them
    assert got["336"].handed_over_at is not None  # Wolverhampton's had: the request went on
    for code in ("333", "336"):
        copies = [
            x
            for x in r.gw(code).ledger.find(authority=code, direction=Direction.INBOUND)
            if x.sender == "332" and x.message_type in ("Assessment", "ConsentChange")
        ]
        assert copies and all(
            r.gw(code).ledger.body_of(code, Direction.INBOUND, x.message_id) is None for x in copies
        ), code
    # The request goes on to Wolverhampton's system as a file of its own, handed over
    # by the handover job, apart from (and so possibly after) the receipt saying so.
    wait_for(lambda: any(shared.drop.glob("*.xml")), what="the request in Wolverhampton's drop")
    requests = [p for p in shared.drop.glob("*.xml")]
    assert requests and all(b"ErasureRequest" in p.read_bytes() for p in requests)
    # Nothing of the child is left at either recipient: ledgers (with WAL), drop files.
    for code in ("333", "336"):
        assert found_in(r.tmp / code, SIOBHAN) == {}, code
    assert found_in(shared.drop, SIOBHAN) == {}


def test_the_sender_learns_when_its_record_was_opened_at_the_recipient(
    shared: Shared,
) -> None:
    r = shared.r
    original = _sent(r, "336")
    _take_files(shared, original.message_id)

    def opened() -> list[str]:
        [row] = r.gw("332").ledger.find(message_id=original.message_id, authority="332")
        return [h.reason or "" for h in row.history if h.status == Status.ACCESSED]

    wait_for(lambda: bool(opened()), what="Wolverhampton's access notice at Dudley")
    [note] = opened()
    assert "opened at 336: LOCAL_ACK by local system" in note
    notices = [
        x
        for x in r.gw("332").ledger.find(authority="332", direction=Direction.INBOUND)
        if x.message_type == "AccessNotice"
    ]
    assert [n.sender for n in notices] == ["336"]
    # Sandwell did not switch them on: its acknowledgement tells Dudley nothing.
    to_333 = _sent(r, "333")
    assert r.gw("333").ledger.acknowledge_local("333", to_333.message_id)
    time.sleep(1.5)  # longer than a batch
    sent_by_333 = r.gw("333").ledger.find(authority="333", direction=Direction.OUTBOUND)
    assert "AccessNotice" not in {x.message_type for x in sent_by_333}
    [row] = r.gw("332").ledger.find(message_id=to_333.message_id, authority="332")
    assert not any(h.status == Status.ACCESSED for h in row.history)


def test_a_webhook_system_never_sees_a_record_recalled_while_it_was_down(
    tmp_path: Path, vhost: str
) -> None:
    secret_path, secret = secret_file(tmp_path / "secrets")

    def webhook(code: str, config: Path) -> None:
        if code != "333":
            return
        path = config / "authorities.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["authorities"]["333"]["connector"] = {
            "kind": "webhook",
            "url": endpoint.url,
            "hmac_secret_file": str(secret_path),
        }
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        gateway = config / "gateway.yaml"
        settings = yaml.safe_load(gateway.read_text(encoding="utf-8"))
        settings["authority_delivery"] = {"333": {"local_retry_backoff_s": [0.2]}}
        gateway.write_text(yaml.safe_dump(settings), encoding="utf-8")

    with WebhookReceiver(secret) as endpoint, region(tmp_path / "region", vhost, webhook) as r:
        endpoint.fail_with(503)  # Sandwell's case system is down
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        assessment, consent = _sent(r, "333"), _sent(r, "333", "ConsentChange")
        wait_for(
            lambda: any(c.answered == 503 for c in endpoint.snapshot()[0]),
            what="a handover refused while the system is down",
        )
        first = sender.recall(r.gw("332"), "332", assessment.message_id, RecallReason.MISDIRECTED)
        got = _outcome(r, assessment.message_id)
        assert got.action == ActionTaken.WITHDRAWN.value
        endpoint.fail_with(None)  # back up: it gets what is still for it
        wait_for(
            lambda: _copy(r, "333", consent.message_id).status == Status.ACKNOWLEDGED,
            what="the consent change taken by the webhook",
        )
        second = sender.recall(r.gw("332"), "332", consent.message_id, RecallReason.NO_BASIS)
        got = _outcome(r, consent.message_id)
        assert got.action == ActionTaken.PASSED_ON.value and got.handed_over_at is not None
        wait_for(
            lambda: endpoint.snapshot()[1][second.message_id or ""] == 1,
            what="the recall POSTed to the case system",
        )
        taken = endpoint.snapshot()[1]
        assert taken[consent.message_id] == 1
        assert assessment.message_id not in taken and first.message_id not in taken


def _withdrawn_by(r: Region, original: str, recall: str | None) -> None:
    """Wait until Dudley's outcome of ``recall`` says 333 withdrew ``original``."""

    def said() -> bool:
        with r.gw("332").ledger.transaction() as conn:
            got = [o for o in outcomes.outcomes_of(conn, "332", original) if o.message_id == recall]
        return bool(got) and got[0].action == ActionTaken.WITHDRAWN.value

    wait_for(said, timeout_s=30, what="Dudley told the original was withdrawn")


def _sandwell_fails(
    monkeypatch: pytest.MonkeyPatch,
    failing: Callable[[Passed], bool],
    failed: threading.Event | None = None,
) -> None:
    """Sandwell's gateway fails on each Assessment it receives while ``failing`` says so
    (the broker retries it, then parks it); ``failed`` is set at each failure."""
    real_apply = pipeline._apply

    def fails_at_sandwell(gw: Gateway, ctx: ApplyContext, item: Passed) -> None:
        if (
            "333" in gw.hosted
            and item.env.header.message_type is MessageType.ASSESSMENT
            and failing(item)
        ):
            if failed is not None:
                failed.set()
            raise RuntimeError("a fault at Sandwell")
        real_apply(gw, ctx, item)

    monkeypatch.setattr(pipeline, "_apply", fails_at_sandwell)


def _parked_at_sandwell(r: Region) -> tuple[MessageRecord, Gateway]:
    """Dudley's Assessment to Sandwell, once Sandwell's broker parked it; Sandwell."""
    original = _sent(r, "333")
    sandwell = r.gw("333")
    wait_for(
        lambda: any(
            d.message_id == original.message_id
            for d in dead_letters.list_dead_letters(sandwell, "333")
        ),
        timeout_s=30,
        what="Dudley's Assessment parked at Sandwell",
    )
    return original, sandwell


@contextmanager
def _waiting_at_sandwell(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Region, MessageRecord]]:
    """A region where Sandwell's gateway fails once on Dudley's Assessment, which then
    waits in Sandwell's delay queue (a retry 2 s on); the region and Dudley's sent row."""
    failed = threading.Event()
    _sandwell_fails(monkeypatch, lambda item: item.attempt < 2, failed)
    steps = {"retry_backoff_s": [2.0] * 5, "retry_budget": 5}
    with region(tmp_path / "region", vhost, delivery=steps) as r:
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        wait_for(failed.is_set, what="Sandwell's first try at Dudley's Assessment")
        # Dudley records SENT once the broker's confirm is back, which may come after
        # Sandwell has taken the message already.
        wait_for(lambda: _sent(r, "333").status != Status.SIGNED, what="Dudley's confirm recorded")
        yield r, _sent(r, "333")


def _kept_at_sandwell(r: Region, original: MessageRecord) -> None:
    """Dudley's Assessment, come on its retry, is recorded at Sandwell as ever and
    served to Sandwell's system."""
    wait_for(
        lambda: (
            [c.status for c in r.gw("333").ledger.find(message_id=original.message_id)]
            == [Status.VERIFIED]
        ),
        what="Dudley's Assessment recorded at Sandwell",
    )
    served = {i.message_id for i in r.gw("333").ledger.inbox("333")}
    assert original.message_id in served


def test_a_recall_that_overtakes_its_original_at_the_recipient_still_withdraws_it(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sandwell's gateway fails twice on Dudley's Assessment, which waits in the delay
    # queue; Dudley recalls it meanwhile and the recall arrives first. It stands there,
    # and the Assessment, when its retry comes, is withdrawn on arrival: never served,
    # where before the recall was refused for good and the Assessment kept.
    with _waiting_at_sandwell(tmp_path, vhost, monkeypatch) as (r, original):
        assert original.status == Status.SENT  # not receipted: on its way again
        assert not r.gw("333").ledger.find(message_id=original.message_id, authority="333")
        done = sender.recall(r.gw("332"), "332", original.message_id, RecallReason.MISDIRECTED)
        _withdrawn_by(r, original.message_id, done.message_id)
        copy = _copy(r, "333", original.message_id)
        assert copy.status == Status.WITHDRAWN
        assert "withdrawn on arrival" in (copy.reason or "")  # it did overtake its original
        served = {i.message_id for i in r.gw("333").ledger.inbox("333")}
        assert original.message_id not in served


def test_a_recall_whose_original_was_parked_stands_and_withdraws_it_when_replayed(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sandwell's gateway fails on Dudley's Assessment on every try, so its broker parks
    # it. Dudley's recall, finding nothing there, stands. When
    # Sandwell's administrator replays the parked Assessment (the fault fixed), it is
    # withdrawn on arrival, never served to Sandwell's system, and Dudley learns so.
    fixed = threading.Event()
    _sandwell_fails(monkeypatch, lambda _item: not fixed.is_set())
    steps = {"retry_backoff_s": [0.5, 0.5], "retry_budget": 2}
    with region(tmp_path / "region", vhost, delivery=steps) as r:
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        original, sandwell = _parked_at_sandwell(r)
        done = sender.recall(r.gw("332"), "332", original.message_id, RecallReason.MISDIRECTED)
        stands = _outcome(r, original.message_id)
        assert stands.action == ActionTaken.NOT_HELD.value, stands.describe()
        assert "the recall stands" in stands.describe()

        fixed.set()
        dead_letters.replay(sandwell, "333", original.message_id, "Sandwell's administrator")
        wait_for(
            lambda: (
                [c.status for c in sandwell.ledger.find(message_id=original.message_id)]
                == [Status.WITHDRAWN]
            ),
            what="the replayed Assessment withdrawn on arrival",
        )
        assert "withdrawn on arrival" in (_copy(r, "333", original.message_id).reason or "")

        _withdrawn_by(r, original.message_id, done.message_id)
        served = {i.message_id for i in sandwell.ledger.inbox("333")}
        assert original.message_id not in served


def test_an_erasure_request_whose_record_was_parked_stands_and_erases_it_when_replayed(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sandwell's gateway fails on Dudley's Assessment on every try, so its broker parks
    # it. Dudley's DPO erases the child meanwhile: the request names the Assessment
    # (sent) and the ConsentChange (delivered). Sandwell erases the ConsentChange, and
    # the request stands for the Assessment. When Sandwell's administrator replays it,
    # it is erased on arrival, never served, and Dudley learns so. Before, the request
    # said "not held" of it, and the replayed Assessment was served to Sandwell's system.
    fixed = threading.Event()
    _sandwell_fails(monkeypatch, lambda _item: not fixed.is_set())
    steps = {"retry_backoff_s": [0.5, 0.5], "retry_budget": 2}
    with region(tmp_path / "region", vhost, delivery=steps) as r:
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        original, sandwell = _parked_at_sandwell(r)
        wait_for(
            lambda: _sent(r, "333", "ConsentChange").status == Status.DELIVERED,
            what="the ConsentChange delivered to Sandwell",
        )
        erasure.erase_child(
            r.gw("332"),
            "332",
            SIOBHAN[1],
            ground=ErasureGround.CONSENT_WITHDRAWN,
            reference="DPO/2026/302",
            actor="Dudley DPO",
        )

        def at_sandwell() -> outcomes.RecallOutcome | None:
            with r.gw("332").ledger.transaction() as conn:
                got = [
                    o
                    for o in outcomes.outcomes_of(conn, "332")
                    if o.kind == "ERASURE" and o.recipient == "333"
                ]
            return got[0] if got and got[0].action else None

        wait_for(lambda: at_sandwell() is not None, what="Sandwell's receipt for the request")
        first = at_sandwell()
        assert first is not None and first.action == ActionTaken.ERASED.value
        assert "1 not received here yet: the request stands" in (first.outcome_reason or "")

        fixed.set()
        dead_letters.replay(sandwell, "333", original.message_id, "Sandwell's administrator")
        wait_for(
            lambda: (
                sandwell.ledger.body_of("333", Direction.INBOUND, original.message_id) is None
                and bool(sandwell.ledger.find(message_id=original.message_id, authority="333"))
            ),
            what="the replayed Assessment erased on arrival",
        )
        copy = _copy(r, "333", original.message_id)
        assert copy.status == Status.WITHDRAWN and copy.restricted
        assert any(h.status == Status.ERASED for h in copy.history)
        served = {i.message_id for i in sandwell.ledger.inbox("333")}
        assert original.message_id not in served
        wait_for(
            lambda: "erased on arrival" in ((at_sandwell() or first).outcome_reason or ""),
            what="Dudley told the parked Assessment was erased as it came",
        )
        assert found_in(r.tmp / "333", SIOBHAN) == {}


def test_a_recall_from_another_authority_before_the_original_comes_withdraws_nothing(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wolverhampton, on its own gateway, learns the id and digest of Dudley's Assessment
    # to Sandwell and recalls it while the Assessment waits in Sandwell's delay queue.
    # Nothing of Dudley's stands there yet, so Wolverhampton's recall stands, for its
    # own messages only: Dudley's Assessment, when it comes, is judged as ever and
    # served to Sandwell's system. A member can recall only what it sent.
    with _waiting_at_sandwell(tmp_path, vhost, monkeypatch) as (r, original):
        hostile = r.envelope(
            "336",
            "333",
            Recall(
                MessageRef(original.message_id, original.digest or ""), RecallReason.MISDIRECTED
            ),
            correlation=original.correlation_id,
            basis=LegalBasis.NO_PERSONAL_DATA,
            in_reply_to=original.message_id,
        )
        recall_id = r.publish(hostile)
        # It stood (kept from Sandwell's system, receipted NOT_HELD), not refused.
        assert r.received("333", recall_id).status == Status.WITHDRAWN
        _kept_at_sandwell(r, original)
        copy = _copy(r, "333", original.message_id)
        assert not copy.restricted and "withdrawn" not in (copy.reason or "")


def test_an_erasure_request_from_another_authority_before_the_record_comes_erases_nothing(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wolverhampton, on its own gateway, names the id and digest of Dudley's Assessment
    # to Sandwell in an erasure request of its own while the Assessment waits in
    # Sandwell's delay queue. Nothing of Dudley's is there yet, so the request stands,
    # for Wolverhampton's messages only: Dudley's Assessment, when it comes, is judged
    # as ever, kept and served to Sandwell's system. A member erases only what it sent.
    with _waiting_at_sandwell(tmp_path, vhost, monkeypatch) as (r, original):
        hostile = r.envelope(
            "336",
            "333",
            ErasureRequest(
                "W/2026/1",
                ErasureGround.UNLAWFUL,
                (MessageRef(original.message_id, original.digest or ""),),
            ),
            correlation="W/2026/1",
            basis=LegalBasis.NO_PERSONAL_DATA,
        )
        request = r.received("333", r.publish(hostile))
        assert request.status == Status.WITHDRAWN, request.reason  # stood, not refused
        with r.gw("333").ledger.transaction() as conn:
            assert standing.tally(conn, "333", "336", request.message_id) == (0, 1)
        _kept_at_sandwell(r, original)
        assert r.gw("333").ledger.body_of("333", Direction.INBOUND, original.message_id)


def test_a_correction_waiting_at_the_recipient_for_its_original_is_not_dead_lettered_by_its_sender(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sandwell's gateway fails on Dudley's Assessment for a while, so it waits in the
    # delay queues there; Dudley corrects it meanwhile, and the correction waits there
    # for its original. Dudley's receipt deadline passes again and again. Before, each
    # pass found Sandwell's inbox empty and sent both again, and once the re-send
    # budget was spent Dudley's dashboard said DEAD_LETTERED while Sandwell still
    # worked on them. Now Dudley sees Sandwell's retry queues and waits.
    fixed, failed = threading.Event(), threading.Event()
    _sandwell_fails(monkeypatch, lambda _item: not fixed.is_set(), failed)
    steps = {
        "retry_backoff_s": [2.0] * 8,
        "retry_budget": 8,
        "receipt_deadline_s": 1,
        # A look that falls while Sandwell's consumer holds both (taken from the inbox,
        # not yet back in a retry queue) sees neither and re-sends a copy: one spare
        # send, so that such a look does not end the test as a dead letter would.
        "resend_budget": 2,
    }
    with region(tmp_path / "region", vhost, delivery=steps) as r:
        dudley = r.gw("332")
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
        wait_for(failed.is_set, what="Sandwell's first try at Dudley's Assessment")
        original = _sent(r, "333")
        body = _envelope(r, "332", original).body
        assert isinstance(body, Assessment)
        fix = sender.correct(
            dudley, "332", original.message_id, replace(body, needs="GP review"), "needs", "Jo"
        )

        def waiting_at_sandwell(message_id: str) -> bool:
            row = _copy(r, "332", message_id)
            return row.status == Status.SENT and "its retry queues hold" in (row.reason or "")

        for message_id in (original.message_id, fix.message_id):
            wait_for(lambda m=message_id: waiting_at_sandwell(m), what="Dudley waiting")
        time.sleep(4)  # four more receipt deadlines: the whole re-send budget and more
        for message_id in (original.message_id, fix.message_id):
            row = _copy(r, "332", message_id)
            assert row.status == Status.SENT and row.attempts <= 2, row.reason
        assert not r.gw("333").ledger.find(message_id=fix.message_id, authority="333")

        fixed.set()  # Sandwell's next try of each takes it
        for message_id in (original.message_id, fix.message_id):
            wait_for(
                lambda m=message_id: _copy(r, "332", m).status == Status.DELIVERED,
                timeout_s=30,
                what="Sandwell's receipt at Dudley",
            )
            row = _copy(r, "332", message_id)
            assert row.attempts <= 2
            assert Status.DEAD_LETTERED not in {h.status for h in row.history}
        done = _outcome(r, original.message_id, "CORRECTION")
        # superseded before Sandwell's system had it
        assert done.action == ActionTaken.WITHDRAWN.value
