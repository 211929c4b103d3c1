"""A hostile but authenticated authority tries to change another authority's records.

Separate gateways per authority on the real broker, each with its own ledger
and keys (``sovereignty_region``). Dudley (332) shares its sample export as
usual: DUD-2026-00417 with Wolverhampton (336) and Sandwell (333); 00418 and
00419 stay in Dudley. Wolverhampton then tries, message type by message type
and field by field, to change Dudley's consent, case threads, routing, flags
and restrictions. Each attempt is quarantined at Dudley's gateway with the
rule's name, or recorded as Wolverhampton's own statement only; Dudley's
state is unchanged; and Dudley's later sends go exactly where they went.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from broker_admin import create_vhost, delete_vhost

from adapters.base import Converted
from adapters.registry import create
from gateway.cases import store as cases
from gateway.crossborder import consent_store
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import PolicyRefusal
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Assessment,
    ConsentAction,
    ConsentChange,
    ConsentRecord,
    ConsentScope,
    Detail,
    Dispute,
    DisputeParty,
    DisputeStage,
    Envelope,
    Evaluation,
    IssueKind,
    IssueLogEntry,
    LegalBasis,
    LineManager,
    MessageRef,
    Notification,
    NotificationType,
    Recall,
    RecallReason,
    Receipt,
    ReceiptItem,
    ReceiptOutcome,
)
from gateway.policy import consent as consent_rules
from gateway.policy.child import child_key
from gateway.services import coordination, outbound
from gateway.services.receiving.pipeline import ID_TAKEN
from tests.integration.sovereignty_region import DUDLEY, Region, region

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SHARED, HELD, REFUSED = "DUD-2026-00417", "DUD-2026-00418", "DUD-2026-00419"


def _records() -> dict[str, Assessment]:
    region = ("330", "331", "332", "333", "334", "335", "336")
    adapter = create(
        "dudley-csv", Path(__file__).resolve().parents[2] / "config" / "adapters", region
    )
    return {
        r.assessment.case_ref: r.assessment
        for r in adapter.read(io.BytesIO(DUDLEY.read_bytes()), DUDLEY.name)
        if isinstance(r, Converted)
    }


RECORDS = _records()


def _settled(r: Region, code: str, timeout_s: float = 30.0) -> None:
    """Wait until ``code`` has nothing of its own waiting for a receipt or to be sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = [
            x
            for x in r.gw(code).ledger.find(
                authority=code, direction=Direction.OUTBOUND, limit=1000, with_history=False
            )
            if x.status in (Status.SIGNED, Status.SENT, Status.RETRYING)
            and x.message_type != "Receipt"
        ]
        if not waiting:
            return
        time.sleep(0.1)
    raise AssertionError(f"{code} did not settle: {[(w.message_id, w.status) for w in waiting]}")


def _recipients(r: Region, code: str, case_ref: str, since: int = 0) -> set[tuple[str, str]]:
    return {
        (x.recipient, x.message_type)
        for x in r.gw(code).ledger.find(
            authority=code, direction=Direction.OUTBOUND, limit=2000, with_history=False
        )
        if x.case_ref == case_ref
        and x.pk > since
        and x.status != Status.REJECTED
        and x.recipient != code
    }


@pytest.fixture(scope="module")
def dudley_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    name = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    try:
        with region(
            tmp_path_factory.mktemp("region"), f"amqp://guest:guest@127.0.0.1:5672/{name}"
        ) as r:
            r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)
            _settled(r, "332")
            yield r
    finally:
        delete_vhost(name)


def _attempt(r: Region, build: Callable[[Region], object]) -> tuple[object, dict[str, object]]:
    """Dudley's state before, then the hostile message recorded at Dudley."""
    before = r.state("332")
    env = build(r)
    assert not isinstance(env, list)
    message_id = r.publish(env)  # type: ignore[arg-type]
    return r.received("332", message_id), before


def _decoy(given_name: str = "Decoy") -> Assessment:
    """Wolverhampton's own record of a child named apart from Dudley's: each test names
    its own, since a body Dudley already received from Wolverhampton is a repeat
    (DUPLICATE, judged with the first) whatever thread it names, and the module's
    tests share one region in whatever order the workers take them."""
    real = RECORDS[HELD]
    child = replace(real.child, given_name=given_name, family_name="Child", identifiers=())
    own = ConsentRecord(
        given=True,
        given_by="Wolverhampton practitioner",
        scopes=(ConsentScope.RECORD, ConsentScope.SHARE_CROSS_BORDER),
        named_las=("332", "336"),
        recorded_at=date(2026, 11, 30),
    )
    return replace(real, child=child, consent=own)


def _notice(
    r: Region, kind: NotificationType, case_ref: str | None, details: tuple[Detail, ...] = ()
) -> Notification:
    return Notification(kind, case_ref, f"{kind.value} (from Wolverhampton)", details=details)


# Each: what Wolverhampton sends Dudley, and the rule Dudley's gateway refuses it under.
ATTACKS: dict[str, tuple[Callable[[Region], object], str]] = {
    "an Assessment on Dudley's own held case, by its computed thread id": (
        lambda r: r.envelope("336", "332", _decoy(), correlation=r.thread_id("332", HELD)),
        "case.not-a-party",
    ),
    "a ConsentChange giving consent for a child Dudley refused, on Dudley's case": (
        lambda r: r.envelope(
            "336",
            "332",
            ConsentChange(
                REFUSED,
                RECORDS[REFUSED].child,
                ConsentAction.GIVEN,
                ConsentRecord(
                    given=True,
                    scopes=(ConsentScope.RECORD, ConsentScope.SHARE_CROSS_BORDER),
                    named_las=("333",),
                    recorded_at=date(2026, 12, 1),
                ),
            ),
            correlation=r.thread_id("332", REFUSED),
        ),
        "case.not-a-party",
    ),
    "a governing-authority change on a case it is a party to but does not govern": (
        lambda r: r.envelope(
            "336",
            "332",
            _notice(
                r,
                NotificationType.GOVERNING_AUTHORITY_CHANGED,
                SHARED,
                (Detail("from_la", "332"), Detail("to_la", "336")),
            ),
            correlation=r.thread_id("332", SHARED),
            basis=LegalBasis.NO_PERSONAL_DATA,
        ),
        "thread.governing-authority",
    ),
    "a governing-authority change without a case reference, naming Dudley's thread id": (
        lambda r: r.envelope(
            "336",
            "332",
            _notice(
                r,
                NotificationType.GOVERNING_AUTHORITY_CHANGED,
                None,
                (Detail("to_la", "336"),),
            ),
            correlation=r.thread_id("332", HELD),
            basis=LegalBasis.NO_PERSONAL_DATA,
        ),
        "case.not-a-party",
    ),
    "a lead-professional allocation on a case it does not govern": (
        lambda r: r.envelope(
            "336",
            "332",
            _notice(r, NotificationType.LEAD_PROFESSIONAL_ALLOCATED, SHARED),
            correlation=r.thread_id("332", SHARED),
            basis=LegalBasis.NO_PERSONAL_DATA,
        ),
        "thread.governing-authority",
    ),
    "a significant-harm referral restricting family notices on a case it is not party to": (
        lambda r: r.envelope(
            "336",
            "332",
            replace(
                _notice(
                    r,
                    NotificationType.SIGNIFICANT_HARM_REFERRAL,
                    HELD,
                    (Detail("inform_family", "false"),),
                ),
                child=RECORDS[HELD].child,
            ),
            correlation=r.thread_id("332", HELD),
            basis=LegalBasis.SAFEGUARDING,
        ),
        "case.not-a-party",
    ),
    "an Evaluation on Dudley's case it is not party to": (
        lambda r: r.envelope(
            "336",
            "332",
            Evaluation(HELD, "fine", "fine"),
            correlation=r.thread_id("332", HELD),
        ),
        "case.not-a-party",
    ),
    "a case transfer of Dudley's case it is not party to": (
        lambda r: r.envelope(
            "336",
            "332",
            _notice(r, NotificationType.CASE_TRANSFER, HELD, (Detail("to_la", "336"),)),
            correlation=r.thread_id("332", HELD),
            basis=LegalBasis.NO_PERSONAL_DATA,
        ),
        "case.not-a-party",
    ),
    "an existence answer to a query Dudley never sent": (
        lambda r: r.existence_answer("336", "332", str(uuid.uuid4())),
        "existence.unsolicited-answer",
    ),
    "an issues-log entry in Sandwell's name": (
        lambda r: r.envelope(
            "336",
            "332",
            IssueLogEntry(
                "333-RISK-FORGED",
                IssueKind.CROSS_BORDER_RISK,
                "333",
                "332",
                "Sandwell says Dudley is unsafe",
                date(2026, 12, 1),
            ),
            correlation=str(uuid.uuid4()),
            basis=LegalBasis.NO_PERSONAL_DATA,
        ),
        "issues-log.reporter",
    ),
    "a dispute between Dudley and Sandwell": (
        lambda r: r.envelope(
            "336",
            "332",
            Dispute(
                dispute_id="DSP-333-forged",
                case_ref=SHARED,
                subject="forged",
                asked="forged",
                raised_by=DisputeParty("X", "333", LineManager("Y")),
                against=DisputeParty("Z", "332", LineManager("W")),
                stage=DisputeStage.LINE_MANAGERS,
                resolved=True,
                outcome="forged outcome",
            ),
            correlation=r.thread_id("332", SHARED),
        ),
        "dispute.parties",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_hostile_change_is_quarantined_with_its_rule_and_changes_nothing(
    dudley_shared: Region, attack: str
) -> None:
    build, rule = ATTACKS[attack]
    record, before = _attempt(dudley_shared, build)
    assert record.status == Status.QUARANTINED, (attack, record.reason)
    assert record.reason is not None and rule in record.reason, record.reason
    _settled(dudley_shared, "332")
    assert dudley_shared.state("332") == before


def test_a_case_named_by_reference_becomes_the_senders_own_thread_and_leaves_dudleys_alone(
    dudley_shared: Region,
) -> None:
    r = dudley_shared
    record, before = _attempt(
        r, lambda r: r.envelope("336", "332", _decoy("Referenced"), correlation=HELD)
    )
    assert record.status == Status.VERIFIED, record.reason
    after = r.state("332")
    assert after["consent"] == before["consent"] and after["sent"] == before["sent"]
    with r.gw("332").ledger.transaction() as conn:
        own = cases.get(conn, "332", r.thread_id("332", HELD))
        theirs = cases.get(conn, "332", r.thread_id("336", HELD))
    assert own is not None and own.parties == ("332",) and own.owner == "332"
    assert theirs is not None and theirs.owner == "336"  # Wolverhampton's statement, apart


def test_consent_from_another_authority_is_its_statement_and_never_dudleys_consent(
    dudley_shared: Region,
) -> None:
    r = dudley_shared
    child = RECORDS[REFUSED].child
    given = ConsentRecord(
        given=True,
        scopes=(ConsentScope.RECORD, ConsentScope.SHARE_CROSS_BORDER),
        named_las=("333", "336"),
        recorded_at=date(2026, 12, 1),
    )
    record, before = _attempt(
        r,
        lambda r: r.envelope(
            "336",
            "332",
            ConsentChange(REFUSED, child, ConsentAction.GIVEN, given),
            correlation=REFUSED,  # named by reference: lands as Wolverhampton's statement
        ),
    )
    assert record.status == Status.VERIFIED
    with r.gw("332").ledger.transaction() as conn:
        history = consent_store.entries(conn, "332", child_key(child))
    assert {e.source for e in history} == {"LOCAL", "336"}
    assert not consent_rules.effective(history).given  # Dudley's own refusal stands
    assert r.state("332")["consent"] == before["consent"]
    share = r.envelope("332", "333", RECORDS[REFUSED], correlation=r.thread_id("332", REFUSED))
    with pytest.raises(PolicyRefusal, match=r"consent\.not-given"):
        outbound.accept_envelope(r.gw("332"), "332", share)


def test_a_withdrawal_restricts_only_what_its_sender_disclosed(dudley_shared: Region) -> None:
    r = dudley_shared
    child = replace(RECORDS[SHARED].child, given_name="Kai", family_name="Referral", identifiers=())
    referral = r.envelope(
        "333",
        "332",
        Notification(
            NotificationType.SIGNIFICANT_HARM_REFERRAL,
            "FWI-900001",
            "Sandwell refers a child who attends a Dudley school",
            child=child,
        ),
        correlation="FWI-900001",
        basis=LegalBasis.SAFEGUARDING,
    )
    outbound.accept_envelope(r.gw("333"), "333", referral)
    _settled(r, "333")
    record, _ = _attempt(
        r,
        lambda r: r.envelope(
            "336",
            "332",
            ConsentChange(
                "EHM-999",
                child,
                ConsentAction.WITHDRAWN,
                ConsentRecord(given=False, recorded_at=date(2026, 12, 1)),
            ),
            correlation="EHM-999",
            basis=LegalBasis.CONSENT_WITHDRAWAL,
            consent_ref=None,
            purpose=None,
        ),
    )
    assert record.status == Status.VERIFIED
    inbox = {i.message_id for i in r.gw("332").ledger.inbox("332", limit=500)}
    assert referral.header.message_id in inbox  # Sandwell's referral is still there


def test_a_receipt_settles_only_messages_sent_to_its_signer(dudley_shared: Region) -> None:
    r = dudley_shared
    (to_sandwell,) = [
        x
        for x in r.gw("332").ledger.find(
            authority="332", direction=Direction.OUTBOUND, limit=1000, with_history=False
        )
        if x.recipient == "333" and x.message_type == "Assessment" and x.case_ref == SHARED
    ]
    assert to_sandwell.status == Status.DELIVERED
    forged = r.envelope(
        "336",
        "332",
        Receipt(
            (
                ReceiptItem(
                    to_sandwell.message_id,
                    to_sandwell.digest or "",
                    ReceiptOutcome.REJECTED,
                    "forged by Wolverhampton",
                ),
            )
        ),
        correlation=to_sandwell.message_id,
        basis=LegalBasis.NO_PERSONAL_DATA,
    )
    r.received("332", r.publish(forged))
    time.sleep(0.5)
    (after,) = r.gw("332").ledger.find(
        message_id=to_sandwell.message_id, authority="332", direction=Direction.OUTBOUND
    )
    assert after.status == Status.DELIVERED


def _reexport(case_ref: str, **cells: str) -> bytes:
    text = DUDLEY.read_bytes().decode("cp1252")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    out = [header]
    for row in rows[1:]:
        if row and row[0] == case_ref:
            for name, value in cells.items():
                row[header.index(name)] = value
            out.append(row)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(out)
    return buffer.getvalue().encode("cp1252")


def test_an_old_export_never_reopens_sharing_after_a_withdrawal(dudley_shared: Region) -> None:
    r = dudley_shared
    gw = r.gw("332")
    mark = max(x.pk for x in gw.ledger.find(authority="332", limit=1, with_history=False))
    withdrawn = r.submit(
        "332",
        _reexport(SHARED, CONSENT_GIVEN="N", SHARE_XBORDER="N", CONSENT_DATE="01/12/2026"),
        "withdrawn.csv",
    )
    assert [o.status for o in withdrawn.outcomes if o.kind == "record"] == [Status.HELD_LOCAL]
    _settled(r, "332")
    told = _recipients(r, "332", SHARED, since=mark)
    assert told == {("333", "ConsentChange"), ("336", "ConsentChange")}  # withdrawals only
    mark = max(x.pk for x in gw.ledger.find(authority="332", limit=1, with_history=False))
    again = r.submit("332", _reexport(SHARED), "september-again.csv")
    (record,) = [o for o in again.outcomes if o.kind == "record"]
    assert record.status == Status.REJECTED
    assert "consent.stale-decision" in record.reasons[0]
    assert "2026-09-02" in record.reasons[0] and "2026-12-01" in record.reasons[0]
    _settled(r, "332")
    assert _recipients(r, "332", SHARED, since=mark) == set()


def test_dudleys_later_sends_go_exactly_where_they_went_before(dudley_shared: Region) -> None:
    r = dudley_shared
    # Nothing about the cases Dudley keeps to itself has left, whatever was attempted.
    assert _recipients(r, "332", HELD) == set()
    assert _recipients(r, "332", REFUSED) == set()
    with r.gw("332").ledger.transaction() as conn:
        thread = cases.get(conn, "332", r.thread_id("332", SHARED))
    assert thread is not None
    assert thread.parties == ("332", "333", "336") and thread.governing_la == "332"
    assert thread.inform_family is None
    # Dudley's evaluation of its shared case is for the parties Dudley made, and no one else
    # (each still subject to the consent in force when it is sent).
    sent = coordination.send_evaluation(
        r.gw("332"), "332", r.thread_id("332", SHARED), Evaluation(SHARED, "good", "good")
    )
    assert {s.recipient for s in sent} == {"332", "333", "336"}


# Last in the module: Wolverhampton's echo stays in Dudley's ledger.
def test_a_recall_of_dudleys_own_record_echoed_by_another_recalls_nothing_of_dudleys(
    dudley_shared: Region,
) -> None:
    # Wolverhampton signs the record it received from Dudley as its own message to
    # Dudley (accepted: its statement, on its own thread), then recalls it. Dudley's
    # gateway took its own sends of that record for forwards of the echo and recalled
    # them from Sandwell (found by a review, 2026-12-06: ``lifecycle.held.sent_on``).
    r = dudley_shared
    (copy,) = [
        x
        for x in r.gw("336").ledger.find(
            authority="336", direction=Direction.INBOUND, limit=1000, with_history=False
        )
        if x.sender == "332" and x.message_type == "Assessment" and x.case_ref == SHARED
    ]
    data = r.gw("336").ledger.body_of("336", Direction.INBOUND, copy.message_id)
    assert data is not None
    received = element_to_envelope(xmlsafe.parse(data, max_bytes=1_000_000, max_depth=64))
    echo = r.envelope(
        "336",
        "332",
        received.body,
        correlation=r.thread_id("336", SHARED),
        consent_ref=received.header.consent_ref,
    )
    echoed = r.received("332", r.publish(echo))
    assert echoed.status == Status.VERIFIED, echoed.reason
    recall = r.envelope(
        "336",
        "332",
        Recall(MessageRef(echoed.message_id, echoed.digest or ""), RecallReason.OTHER),
        correlation=echo.header.correlation_id,
        basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=echoed.message_id,
    )
    recalled = r.received("332", r.publish(recall))
    assert recalled.status != Status.QUARANTINED, recalled.reason  # its own message, its call
    _settled(r, "332")
    sent = r.gw("332").ledger.find(
        authority="332", direction=Direction.OUTBOUND, limit=2000, with_history=False
    )
    assert [x.recipient for x in sent if x.message_type == "Recall"] == []


def test_a_message_under_the_id_of_another_authoritys_message_is_refused_and_takes_nothing(
    dudley_shared: Region,
) -> None:
    # Wolverhampton learnt the id of a message Sandwell sent Dudley and sends Dudley a
    # message of its own under it. Dudley's local system acknowledges, and its drop
    # folder names, a message by its id: taken for Sandwell's, it would have been
    # acknowledged with it or written over it (found by a review, 2026-12-06).
    r = dudley_shared

    def notice_to_dudley(sender: str) -> Envelope:
        return r.envelope(
            sender,
            "332",
            _notice(r, NotificationType.CROSS_BORDER_CASE_IDENTIFIED, SHARED),
            correlation=r.thread_id(sender, SHARED),
            basis=LegalBasis.NO_PERSONAL_DATA,
        )

    held = r.received("332", r.publish(notice_to_dudley("333")))
    assert held.status == Status.VERIFIED, held.reason
    clash = notice_to_dudley("336")
    clash = replace(clash, header=replace(clash.header, message_id=held.message_id))
    r.publish(clash)

    def rows() -> dict[str, MessageRecord]:
        found = r.gw("332").ledger.find(
            message_id=held.message_id, authority="332", direction=Direction.INBOUND
        )
        return {x.sender: x for x in found}

    deadline = time.monotonic() + 20
    while "336" not in rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = rows()["336"]
    assert refused.status == Status.QUARANTINED
    assert refused.reason == ID_TAKEN  # whose the id is stays with Dudley
    inbox = r.gw("332").ledger.inbox("332", limit=1000, include_restricted=True)
    assert [i.sender for i in inbox if i.message_id == held.message_id] == ["333"]
