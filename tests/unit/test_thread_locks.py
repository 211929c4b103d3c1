"""Two decisions about one case at the same moment, on a real SQLite ledger and on
PostgreSQL: the second waits for the first to commit and decides on what it did
(``locks.thread``: SQLite's one write lock, taken from the call on; PostgreSQL's
transaction-scoped advisory lock on the case thread, where replicas share a ledger;
"not ours" locks the received message's row instead, ``FOR UPDATE``). Each
PostgreSQL case fails with its lock taken out (checked by hand, 2026-12-06).

Each test pauses the first decision just after its reads and lets the second one
run; without the lock the second ran to its end in that pause, and the first then
wrote over it from a stale read: two uploads of one register both inserted the
case threads (the second upload failed on the unique key), two recalls of one
message both sent a signed Recall, and two "not ours" about one received message
both sent a MISDIRECTED notice. Two identical corrections of one message (a double
click, a retry after a timeout) both sent a signed Correction: the second superseded
the first with the same body; now it is answered with the first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from policy_support import ALL, DUDLEY, envelope_of, memory_gateway, settings_for, submit
from retention_support import Clock, dudley_shared, region
from support.databases import on_both
from support.gateways import memory_gateway as gateway_with

from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction
from gateway.lifecycle import not_ours, sender
from gateway.model import Assessment, RecallReason
from gateway.services.outbound import records

pytestmark = [
    pytest.mark.timeout(120),
    on_both,
]


@dataclass
class Second:
    """The second decision's thread and what it raised."""

    threads: list[threading.Thread] = field(default_factory=list)
    raised: list[BaseException] = field(default_factory=list)

    def join(self) -> list[BaseException]:
        for thread in self.threads:
            thread.join(30)
        return self.raised


def _first_pauses(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, second: Callable[[], None]
) -> Second:
    """Patch ``owner.name`` so that the main thread's first call, once it has returned,
    runs ``second`` in another thread and gives it a second to finish."""
    real = getattr(owner, name)
    run = Second()
    raised, started = run.raised, run.threads

    def run_second() -> None:
        try:
            second()
        except BaseException as exc:  # reported by the caller
            raised.append(exc)

    def paused(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if threading.current_thread() is threading.main_thread() and not started:
            thread = threading.Thread(target=run_second)
            started.append(thread)
            thread.start()
            thread.join(1.0)  # ends at once without the lock, times out with it
        return result

    monkeypatch.setattr(owner, name, paused)
    return run


def _sent(
    gw: Gateway, authority: str, message_type: str, recipient: str | None = None
) -> list[MessageRecord]:
    """What ``authority`` sent of ``message_type`` (to ``recipient``, if given)."""
    return [
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=2000)
        if r.message_type == message_type and recipient in (None, r.recipient)
    ]


def _shared_assessment(gw: Gateway) -> tuple[MessageRecord, Assessment]:
    """Dudley's register shared (``dudley_shared``): an Assessment sent to 336 and its body."""
    dudley_shared(gw)
    original = _sent(gw, "332", "Assessment", recipient="336")[0]
    env = envelope_of(gw, original)
    assert env is not None and isinstance(env.body, Assessment)
    return original, env.body


def _assessments_to(gw: Gateway, recipient: str) -> list[str]:
    return [r.message_id for r in _sent(gw, "332", "Assessment", recipient)]


def test_two_uploads_of_one_register_at_once_both_succeed_and_send_each_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    gw = gateway_with(tmp_path, settings=settings_for(tmp_path, ALL, ledger_url))
    once = memory_gateway(tmp_path / "once")  # what one upload sends, on SQLite
    try:
        submit(once, "332", "dudley-csv", DUDLEY.read_bytes(), "caf-register.csv")
        expected = sorted(_assessments_to(once, "336"))
        assert expected

        def second() -> None:
            submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), "again.csv")

        run = _first_pauses(monkeypatch, records, "known_for", second)
        submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), "caf-register.csv")
        assert run.join() == []
        assert len(_assessments_to(gw, "336")) == len(expected)
    finally:
        gw.ledger.engine.dispose()
        once.ledger.engine.dispose()


def test_two_recalls_of_one_message_at_once_send_one_recall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    gw = region(tmp_path, Clock.starting_now(), settings_for(tmp_path, ALL, ledger_url))
    try:
        dudley_shared(gw)
        original = _sent(gw, "332", "Assessment", recipient="333")[0]

        def second() -> None:
            sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, None, "Sam")

        run = _first_pauses(monkeypatch, sender, "_recalled", second)
        done = sender.recall(gw, "332", original.message_id, RecallReason.MISDIRECTED, None, "Jo")
        raised = run.join()
        assert done.message_id is not None
        assert len(raised) == 1 and isinstance(raised[0], PolicyRefusal)
        assert "already recalled" in str(raised[0])
        recalls = _sent(gw, "332", "Recall")
        assert [r.message_id for r in recalls] == [done.message_id]
    finally:
        gw.ledger.engine.dispose()


def test_two_not_ours_about_one_message_at_once_send_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    gw = region(tmp_path, Clock.starting_now(), settings_for(tmp_path, ALL, ledger_url))
    try:
        dudley_shared(gw)
        original = _sent(gw, "332", "Assessment", recipient="333")[0]
        answers = []

        def second() -> None:
            answers.append(not_ours.not_ours(gw, "333", original.message_id, "Sam"))

        run = _first_pauses(monkeypatch, not_ours, "_said_before", second)
        first = not_ours.not_ours(gw, "333", original.message_id, "Jo")
        assert run.join() == []
        [again] = answers
        assert not first.already_said
        assert again.already_said and again.notice_id == first.notice_id and again.by == "Jo"
        notices = _sent(gw, "333", "Notification", recipient="332")
        assert [r.message_id for r in notices] == [first.notice_id]
    finally:
        gw.ledger.engine.dispose()


def test_two_identical_corrections_of_one_message_at_once_send_one_correction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    gw = region(tmp_path, Clock.starting_now(), settings_for(tmp_path, ALL, ledger_url))
    try:
        original, assessment = _shared_assessment(gw)
        fixed = replace(assessment, needs="Asthma review")
        answers = []

        def second() -> None:
            answers.append(sender.correct(gw, "332", original.message_id, fixed, "needs", "Jo"))

        run = _first_pauses(monkeypatch, sender, "_head", second)
        first = sender.correct(gw, "332", original.message_id, fixed, "needs", "Jo")
        assert run.join() == []
        [again] = answers
        assert first.message_id is not None
        assert again.message_id == first.message_id
        assert again.original_id == first.original_id == original.message_id
        corrections = _sent(gw, "332", "Correction", recipient="336")
        assert [r.message_id for r in corrections] == [first.message_id]
    finally:
        gw.ledger.engine.dispose()


def test_a_different_correction_made_at_the_same_moment_corrects_the_first_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    gw = region(tmp_path, Clock.starting_now(), settings_for(tmp_path, ALL, ledger_url))
    try:
        original, assessment = _shared_assessment(gw)
        answers = []

        def second() -> None:
            other = replace(assessment, needs="GP review")
            answers.append(sender.correct(gw, "332", original.message_id, other, "gp", "Sam"))

        run = _first_pauses(monkeypatch, sender, "_head", second)
        mine = replace(assessment, needs="Asthma review")
        first = sender.correct(gw, "332", original.message_id, mine, "needs", "Jo")
        assert run.join() == []
        [later] = answers
        assert later.original_id == first.message_id  # the chain: the latest version
        assert len(_sent(gw, "332", "Correction", recipient="336")) == 2
    finally:
        gw.ledger.engine.dispose()
