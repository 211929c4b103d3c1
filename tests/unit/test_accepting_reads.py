"""What accepting a local record reads about the child: its own case, and the rest
of the child's history only when the record's consent needs it.

Issue 14: the accepting transaction read every past recipient, queued copy and
held copy of the child for every record, and found held copies through the index
of every held message of the authority, so each record of a child cost more than
the last (a 10,000-record export of a few children: 5 ms a record at the start,
60 ms at the end). A decision that needs what was not read refuses to be taken.
"""

from __future__ import annotations

import io
import re
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from policy_support import DUDLEY, SANDWELL, memory_gateway, outbound_of, submit
from support.sql import captured, plans
from test_policy_consent import _before_withdrawal, _bytes, _episodes
from test_policy_governing import _out_of_area

from adapters.base import Converted
from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.model import (
    Assessment,
    ConsentAction,
    ConsentChange,
    Envelope,
    LegalBasis,
    Purpose,
)
from gateway.outbox import new_envelope
from gateway.policy.child import child_key
from gateway.policy.decision import Known, Reads, decide_record, reads_for
from gateway.policy.submission import Sending, decide_envelope, needs_child_history
from gateway.services import coordination, outbound, views
from gateway.services.outbound import knowledge

pytestmark = pytest.mark.timeout(120)

# knowledge.past_recipients and knowledge.queued_copies
WITHDRAWAL_READS = re.compile(
    r"SELECT DISTINCT messages\.recipient\s|SELECT messages\.id, messages\.recipient\s+FROM"
)


def _dudley_with_cases(start: int, copies: int) -> bytes:
    """The Dudley sample's rows ``copies`` times, each copy under fresh case references."""
    lines = [line for line in DUDLEY.read_bytes().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    out = [header]
    for n in range(start, start + copies):
        for row in rows:
            out.append(re.sub(rb"DUD-(\d{4})-(\d+)", rb"DUD-\1-\2-" + str(n).encode(), row))
    return b"\r\n".join(out) + b"\r\n"


def _converted(gw: Gateway, adapter: str, data: bytes) -> list[Converted]:
    results = gw.adapters.get(adapter).read(io.BytesIO(data), "test")
    return [r for r in results if isinstance(r, Converted)]


def test_accepting_a_record_finds_the_childs_messages_by_its_case_and_child_indexes(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    # Earlier records of the same children under other cases: some held, some queued.
    submit(gw, "332", "dudley-csv", _dudley_with_cases(0, 3), "before.csv")
    with captured(gw.ledger.engine) as statements:
        report = submit(gw, "332", "dudley-csv", _dudley_with_cases(3, 1), "more.csv")
    assert report.outcomes
    found = plans(gw.ledger.engine, statements)
    reads = {sql: plan for sql, plan in found.items() if "FROM messages" in sql}
    assert reads
    for sql, plan in reads.items():
        # Not every held message of the authority, nor every message: the case's,
        # the child's, or one content's.
        assert "ix_messages_inbox" not in plan and "SCAN messages" not in plan, (sql, plan)


def test_a_record_that_withdraws_no_consent_reads_no_past_recipients_or_queued_copies(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "332", "dudley-csv", _dudley_with_cases(0, 2), "before.csv")
    with captured(gw.ledger.engine) as statements:
        submit(gw, "332", "dudley-csv", _dudley_with_cases(2, 1), "again.csv")
    assert statements
    assert not [sql for sql, _ in statements if WITHDRAWAL_READS.search(sql)]


def _withdrawal(gw: Gateway) -> tuple[Converted, Converted]:
    """Wolverhampton's record of EHM-77245 with its consent, then with it withdrawn."""
    (given,) = _converted(gw, "wolverhampton-json", _bytes(_before_withdrawal()))
    (withdrawn,) = _converted(gw, "wolverhampton-json", _bytes(_episodes("EHM-77245")))
    return given, withdrawn


def test_what_a_record_needs_read_follows_from_what_it_does_to_consent(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    given, withdrawn = _withdrawal(gw)
    key = child_key(given.assessment.child)
    now = gw.clock()
    # New consent on an empty register: held copies of every case may be released.
    thread = "336:EHM-77245"
    assert reads_for((), given, now, "336", thread) == Reads(withdrawal=False, all_held=True)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    with gw.ledger.transaction() as conn:
        history = knowledge.consent_history(conn, "336", key)
    assert history
    # The same consent again: a repeat, nothing beyond the case to read.
    assert reads_for(history, given, now, "336", thread) == Reads(withdrawal=False, all_held=False)
    # A withdrawal: the past recipients to tell, the queued copies to stop.
    assert reads_for(history, withdrawn, now, "336", thread) == Reads(
        withdrawal=True, all_held=False
    )


def test_a_withdrawal_is_not_decided_without_the_childs_recipients_and_queued_copies(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    given, withdrawn = _withdrawal(gw)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    with gw.ledger.transaction() as conn:
        history = knowledge.consent_history(conn, "336", child_key(given.assessment.child))
    known = Known(
        authority="336",
        directory=gw.settings.directory,
        policy=gw.settings.policy,
        now=gw.clock(),
        consent_history=history,
        thread=None,
        withdrawal_read=False,
        all_held_read=False,
    )
    with pytest.raises(LookupError, match="EHM-77245: the record withdraws consent"):
        decide_record(known, withdrawn, "336:EHM-77245")
    # Read as the reader reads it, the same withdrawal is decided and stops sends.
    decision = decide_record(replace(known, withdrawal_read=True), withdrawn, "336:EHM-77245")
    assert decision.new_consent is not None


def test_a_withdrawal_finds_the_childs_recipients_and_queued_copies_by_the_childs_index(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    with captured(gw.ledger.engine) as statements:
        submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77245")), "after.json")
    withdrawal_reads = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if WITHDRAWAL_READS.search(sql)
    }
    assert len(withdrawal_reads) == 2
    for sql, plan in withdrawal_reads.items():
        assert "USING INDEX ix_messages_child" in plan, (sql, plan)


def _envelope(
    gw: Gateway, body: Assessment | ConsentChange, basis: LegalBasis = LegalBasis.CONSENT
) -> Envelope:
    return new_envelope(
        gw.clock,
        sender="336",
        recipient="333",
        body=body,
        correlation="336:EHM-77245",
        legal_basis=basis,
        consent_ref="336/EHM-77245/consent",
        purpose=Purpose.SHARE_CROSS_BORDER,
    )


def test_an_envelope_other_than_a_consent_change_reads_none_of_the_childs_other_messages(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    given, _ = _withdrawal(gw)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    with captured(gw.ledger.engine) as statements, suppress(PolicyRefusal):
        outbound.accept_envelope(gw, "336", _envelope(gw, given.assessment))
    assert any("FROM consent_register" in sql for sql, _ in statements)  # it was decided
    child_reads = [
        sql
        for sql, _ in statements
        if WITHDRAWAL_READS.search(sql) or "messages.child_key = ?" in sql
    ]
    assert not child_reads


def test_a_consent_change_envelope_is_not_decided_without_the_childs_other_messages(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    given, withdrawn = _withdrawal(gw)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    a = withdrawn.assessment
    assert a.consent is not None
    with gw.ledger.transaction() as conn:
        history = knowledge.consent_history(conn, "336", child_key(a.child))
    change = _envelope(
        gw,
        ConsentChange(a.case_ref, a.child, ConsentAction.WITHDRAWN, a.consent),
        LegalBasis.CONSENT_WITHDRAWAL,
    )
    known = Sending(
        "336",
        gw.settings.directory,
        gw.settings.policy,
        gw.clock(),
        (),
        consent_history=history,
        past_recipients=("333", "334"),
    )
    assert needs_child_history(change)
    assert not needs_child_history(_envelope(gw, given.assessment))
    with pytest.raises(LookupError, match="EHM-77245: a consent change"):
        decide_envelope(replace(known, child_history_read=False), change)
    # Read, the same change is decided: its recipient aside, past recipients are told.
    assert decide_envelope(known, change).withdrawal_to == ("334",)


def _reads_of(statements: list[tuple[str, Any]], table: str) -> list[tuple[str, Any]]:
    """(SQL, parameter values) of the statements reading ``table``."""
    return [
        (sql, list(params.values()) if isinstance(params, dict) else list(params))
        for sql, params in statements
        if re.search(rf"\bFROM {table}\b", sql)
    ]


def test_a_record_reads_only_the_agreements_its_out_of_area_actions_ask_about(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    # Years of out-of-area work: the authority's other agreements are not this record's.
    for n in range(30):
        coordination.record_agreement(gw, "336", f"Practitioner {n}", "335", "Head", "Coordinator")
    # Dev Mistry's agreement to deliver in Sandwell is not one to deliver in Walsall.
    coordination.record_agreement(gw, "336", "Dev Mistry", "334", "Head", "Coordinator")
    outbound.submit_results(gw, "336", [_out_of_area(gw)])
    flagged = [s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "OUT_OF_AREA_SERVICE"]
    assert len(flagged) == 2
    coordination.record_agreement(
        gw, "336", "Dev Mistry", "335", "Head of Pastoral Care", "Wolverhampton CAF Co-ordinator"
    )
    with captured(gw.ledger.engine) as statements:
        outbound.submit_results(gw, "336", [_out_of_area(gw)])
    # The one agreement asked about is found: Dev Mistry delivering in Walsall is agreed,
    # so the record sent again flags nothing more.
    assert [
        s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "OUT_OF_AREA_SERVICE"
    ] == flagged
    ((_, params),) = _reads_of(statements, "service_agreements")
    assert "dev mistry" in params and not any(f"practitioner {n}" in params for n in range(30))


def test_a_record_without_an_out_of_area_action_or_a_service_gap_reads_neither(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    coordination.record_agreement(gw, "332", "Karen Hale", "336", "Head", "Coordinator")
    with captured(gw.ledger.engine) as statements:
        submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), "register.csv")
    assert statements
    assert _reads_of(statements, "service_agreements") == []
    assert _reads_of(statements, "issues_log") == []  # nor stores an entry


def _issue_notices(gw: Gateway) -> list[str]:
    return sorted(s.recipient for s in outbound_of(gw, "333") if s.kind == "IssueLogEntry")


def test_a_plan_asking_about_an_agreement_or_issue_not_looked_up_is_not_taken(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    record = _out_of_area(gw)
    thread = "336:" + record.assessment.case_ref
    known = Known(
        authority="336",
        directory=gw.settings.directory,
        policy=gw.settings.policy,
        now=gw.clock(),
        consent_history=(),
        thread=None,
        agreements_read=frozenset(),
        issue_ids_read=frozenset(),
    )
    with pytest.raises(LookupError, match="out-of-area agreements were not read"):
        decide_record(known, record, thread)
    asked = reads_for((), record, known.now, "336", thread)
    assert asked.agreements == {("dev mistry", "335")}
    decision = decide_record(replace(known, agreements_read=asked.agreements), record, thread)
    assert decision.items


def test_a_service_gap_submitted_again_reads_its_own_entry_and_is_logged_once(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "333", "sandwell-xml", SANDWELL.read_bytes(), SANDWELL.name)
    (logged,) = views.issues_of(gw, "333")
    told = _issue_notices(gw)
    assert told
    with captured(gw.ledger.engine) as statements:
        submit(gw, "333", "sandwell-xml", SANDWELL.read_bytes(), "again.xml")
    assert [i.entry.entry_id for i in views.issues_of(gw, "333")] == [logged.entry.entry_id]
    # Found logged, the gap is not told to the other authorities again.
    assert _issue_notices(gw) == told
    # The decision's read (``knowledge.known_issue_ids``), not the log's own check on storing.
    ((_, params),) = [
        r for r in _reads_of(statements, "issues_log") if "SELECT issues_log.entry_id" in r[0]
    ]
    assert logged.entry.entry_id in params
