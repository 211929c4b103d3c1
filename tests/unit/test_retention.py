"""Retention: personal data past its period is erased at both ends, a tombstone stays,
the status history and the audit chain still verify, and plan changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import DUDLEY, settings_for
from retention_support import SIOBHAN, Clock, dudley_shared, found_in, region, retention_yaml
from sqlalchemy import func, select
from support.sql import captured, plans, unbounded
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.ops import attention
from gateway.retention import plan as plan_module
from gateway.retention import purge, service
from gateway.retention.tables import retention_runs, tombstones
from gateway.settings import Settings

pytestmark = pytest.mark.timeout(120)


def _closed_sample() -> bytes:
    """The Dudley register with row 1's case closed."""
    lines = DUDLEY.read_bytes().split(b"\n")
    row = lines[1].rstrip(b"\r")
    head, _, status = row.rpartition(b",")
    assert status in (b"OPEN", b"SUBMITTED"), status
    lines[1] = head + b",CLOSED" + (b"\r" if lines[1].endswith(b"\r") else b"")
    return b"\n".join(lines)


def _bodies(gw: Gateway, authority: str) -> int:
    """Bodies still held by ``authority``, receipts (no personal data) aside."""
    with gw.ledger.transaction() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    messages.c.authority == authority,
                    HAS_BODY,
                    messages.c.message_type != "Receipt",
                )
            ).scalar_one()
        )


def _closed_after_100_days(tmp_path: Path) -> Settings:
    """The test settings with a closed case's records kept 100 days, the rest 1,000."""
    return retention_yaml(
        settings_for(tmp_path),
        case_records={
            "CLOSED": {"default": 100},
            "OPEN": {"default": 1000},
            "UNKNOWN": {"default": 1000},
        },
    )


def test_a_rejected_input_loses_the_values_its_reasons_quote_after_rejected_days(
    tmp_path: Path,
) -> None:
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    rejected = gw.ledger.find(authority="332", status=Status.REJECTED, limit=10)
    assert any("X332412014017" in (h.reason or "") for r in rejected for h in r.history)
    clock.advance(days=29)
    assert not [d for d in service.planned(gw, "332").plan.due if d.status == "REJECTED"]
    clock.advance(days=2)
    report = service.apply(gw, "332", "test")
    assert report.by_rule.get("rejected_days", 0) >= 1
    after = gw.ledger.find(authority="332", status=Status.REJECTED, limit=10)
    texts = [r.reason or "" for r in after] + [h.reason or "" for r in after for h in r.history]
    assert not any("X332412014017" in t or "99900000" in t for t in texts)
    assert all(r.history[-1].status == Status.ERASED for r in after)
    with gw.ledger.transaction() as conn:
        kept = conn.execute(
            select(tombstones.c.digest, tombstones.c.status, tombstones.c.rule).where(
                tombstones.c.message_id.in_([r.message_id for r in after])
            )
        ).all()
    assert {(s, rule) for _, s, rule in kept} == {("REJECTED", "rejected_days")}


def test_held_records_go_after_held_local_days_while_open_cases_stay(tmp_path: Path) -> None:
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    open_bodies = _bodies(gw, "336")
    clock.advance(days=91)
    report = service.apply(gw, "332", "test")
    assert report.by_rule.get("held_local_days", 0) >= 2  # Dudley rows 2 and 3 were held
    held = gw.ledger.find(authority="332", status=Status.HELD_LOCAL, limit=10)
    assert held and all(h.history[-1].status == Status.ERASED for h in held)
    assert service.apply(gw, "336", "test").messages == 0
    assert _bodies(gw, "336") == open_bodies


def test_a_closed_case_is_kept_until_its_period_after_closing_then_erased_at_both_ends(
    tmp_path: Path,
) -> None:
    clock = Clock.starting_now()
    settings = _closed_after_100_days(tmp_path)
    gw = region(tmp_path, clock, settings)
    dudley_shared(gw, _closed_sample())
    clock.advance(days=99)
    assert not [d for d in service.planned(gw, "336").plan.due if d.rule.startswith("case")]
    clock.advance(days=2)
    for code in ("332", "336", "333"):
        report = service.apply(gw, code, "test")
        assert report.by_rule.get("case_records.CLOSED.default", 0) >= 1, code
    received = gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=100)
    assert received and all(r.case_ref is None for r in received if r.message_type != "Receipt")
    assert _bodies(gw, "336") == 0
    # The status history still tells what happened to each message.
    assessment = next(r for r in received if r.message_type == "Assessment")
    assert [h.status for h in assessment.history][:2] == [Status.RECEIVED, Status.VERIFIED]
    assert assessment.history[-1].status == Status.ERASED
    gw.ledger.engine.dispose()
    assert "J332412014017" not in found_in(tmp_path, SIOBHAN)


def test_a_dry_run_foresees_what_the_run_withdraws_and_leaves_to_nobody(tmp_path: Path) -> None:
    # 336's local system never took Dudley's closed case: the run withdraws it from its
    # inbox. 332's rejected inputs asked a human to look: the run leaves them to nobody.
    # The dry run said neither (found by a review).
    clock = Clock.starting_now()
    settings = _closed_after_100_days(tmp_path)
    gw = region(tmp_path, clock, settings)
    dudley_shared(gw, _closed_sample())
    clock.advance(days=101)
    done = {}
    for code in ("332", "336"):
        dry = service.dry_report(service.planned(gw, code), clock())
        done[code] = service.apply(gw, code, "test")
        said = (dry.withdrawn, dry.state.get(purge.DISMISSED, 0))
        assert said == (done[code].withdrawn, done[code].state.get(purge.DISMISSED, 0)), code
    assert done["336"].withdrawn >= 1
    assert done["332"].state.get(purge.DISMISSED, 0) >= 1
    assert not [
        n for (_, n) in attention.counts(gw.ledger, ["332"]) if n is attention.Need.REJECTED
    ]


def test_the_audit_chain_verifies_after_a_purge_and_the_purge_is_audited_in_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock.starting_now()
    settings = settings_for(tmp_path)
    gw = region(tmp_path, clock, settings)
    dudley_shared(gw)
    clock.advance(days=7 * 365)
    reports = service.apply_all(gw, "test")
    assert sum(r.messages for r in reports) > 20
    assert audit.verify(gw.ledger) == []
    runs = [e for e in audit.entries(gw.ledger) if e.event.action == "RETENTION"]
    assert len(runs) == len([r for r in reports if r.messages])
    assert not any(n in (e.event.detail or "") for e in runs for n in SIOBHAN)
    monkeypatch.setenv("CAFGW_DATABASE__URL", settings.database.url)
    monkeypatch.setenv("CAFGW_KEYS_DIR", str(settings.keys_dir))  # holds the audit key
    done = CliRunner().invoke(app, ["audit", "verify", "--config", str(settings.config_dir)])
    assert done.exit_code == 0, done.output
    assert "audit log intact" in done.output
    with gw.ledger.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(retention_runs)).scalar_one() == len(
            runs
        )


def test_plan_is_a_dry_run_that_changes_nothing(tmp_path: Path) -> None:
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    clock.advance(days=7 * 365)
    before = _bodies(gw, "332")
    todo = service.planned(gw, "332")
    assert len(todo.plan.due) > 5
    assert service.dry_report(todo, clock()).dry_run
    assert _bodies(gw, "332") == before
    with gw.ledger.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(tombstones)).scalar_one() == 0


def test_a_plan_read_a_page_at_a_time_finds_what_one_read_finds_each_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14: each page was read with an OFFSET, by the authority's index, sorted
    # again: every message of the authority read and sorted for every page of a run.
    # It is now walked by key, each page after the last.
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    clock.advance(days=7 * 365)
    with captured(gw.ledger.engine) as statements:
        whole = service.planned(gw, "332", foresee=False).plan.pks()
    assert len(whole) > 5
    # Fewer than a page: one read, not another to find the end.
    assert sum("messages.created_at <= ?" in sql for sql, _ in statements) == 1
    monkeypatch.setattr(plan_module, "PAGE", 1)
    with captured(gw.ledger.engine) as statements:
        for most in (1, 3, len(whole)):
            paged = service.planned(gw, "332", limit=most).plan  # a dry run's foresight too
            assert [d.pk for d in paged.due] == sorted(whole)[:most]
    found = plans(gw.ledger.engine, statements)
    (walk,) = [p for sql, p in found.items() if "messages.created_at <= ?" in sql]
    assert walk.splitlines()[0] == "SEARCH messages USING INTEGER PRIMARY KEY (rowid>?)", walk
    assert "TEMP B-TREE" not in walk, walk
    for sql, plan in found.items():
        if "FROM existence_held" not in sql:  # few rows, each gone at its period
            assert not unbounded(plan), f"{sql}\n{plan}"
