"""An existence answer is taken once, in reply to an existence query its recipient sent
the answerer, and filed on that query's thread whatever thread it names: the asked
authority cannot add lines to any thread of the asker's, nor answer twice. Found by a
review, 2026-12-06."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from policy_support import pump
from sqlalchemy import select
from support.api_attacks import ask_existence, existence_region
from support.sql import captured, plans

from gateway.cases import store as cases
from gateway.cases.tables import case_log
from gateway.context import Gateway
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.model import Detail, LegalBasis, Notification, NotificationType
from gateway.services import views

pytestmark = pytest.mark.timeout(120)


def _answer_from_336(gw: Gateway, in_reply_to: str, thread: str) -> str:
    """A match answer Wolverhampton signs itself, as a gateway that checks nothing would."""
    env = gw.outbox.envelope(
        sender="336",
        recipient="334",
        body=Notification(
            NotificationType.EXISTENCE_ANSWER,
            None,
            "A CAF exists",
            details=(Detail("match", "true"),),
        ),
        correlation=thread,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
        in_reply_to=in_reply_to,
    )
    gw.ledger.record([gw.outbox.sign(env)])
    pump(gw)
    return env.header.message_id


def _threads_logging_an_answer(gw: Gateway, query_id: str) -> list[str]:
    with gw.ledger.transaction() as conn:
        cases.flush_log(conn)
        rows = conn.execute(
            select(case_log.c.correlation_id).where(
                case_log.c.authority == "334",
                case_log.c.kind == "NOTICE_RECEIVED:EXISTENCE_ANSWER",
                case_log.c.message_id == query_id,
            )
        ).all()
    return [str(r[0]) for r in rows]


def _at_334(gw: Gateway, message_id: str) -> MessageRecord:
    [row] = gw.ledger.find(message_id=message_id, authority="334", direction=Direction.INBOUND)
    return row


def test_an_answer_is_filed_on_its_querys_thread_and_a_second_one_is_refused(
    tmp_path: Path,
) -> None:
    client, auth, gw = existence_region(tmp_path)
    asked = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk")
    assert asked.status_code == 202, asked.text
    pump(gw)
    query_id = asked.json()["message_id"]
    [query] = gw.ledger.find(message_id=query_id, authority="334", direction=Direction.OUTBOUND)
    assert _threads_logging_an_answer(gw, query_id) == [query.correlation_id]

    other_thread = str(uuid.uuid4())
    again = _at_334(gw, _answer_from_336(gw, query_id, other_thread))
    assert again.status is Status.QUARANTINED
    assert "answered by 336 already" in (again.reason or "")
    assert _threads_logging_an_answer(gw, query_id) == [query.correlation_id]


def test_an_answer_to_a_notice_that_was_no_existence_query_is_refused(tmp_path: Path) -> None:
    _client, _auth, gw = existence_region(tmp_path)
    env = gw.outbox.envelope(
        sender="334",
        recipient="336",
        body=Notification(NotificationType.SERVICE_GAP, None, "a gap"),
        correlation=str(uuid.uuid4()),
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    gw.ledger.record([gw.outbox.sign(env)])
    pump(gw)
    answer = _at_334(gw, _answer_from_336(gw, env.header.message_id, env.header.correlation_id))
    assert answer.status is Status.QUARANTINED
    assert "existence.unsolicited-answer" in (answer.reason or "")


def test_whether_a_query_was_answered_is_read_from_its_threads_log_alone(
    tmp_path: Path,
) -> None:
    client, auth, gw = existence_region(tmp_path)
    asked = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk")
    pump(gw)
    query_id = asked.json()["message_id"]
    with captured(gw.ledger.engine) as statements:
        again = _at_334(gw, _answer_from_336(gw, query_id, str(uuid.uuid4())))
        answer = views.existence_answer(gw, "334", query_id)
    assert again.status is Status.QUARANTINED
    assert "answered by 336 already" in (again.reason or "")
    assert (answer.answer or "").startswith("match=true; coordinator=")
    reads = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "FROM case_log" in sql and "case_log.message_id" in sql
    }
    assert len(reads) == 1
    # Not every log line of the authority (ix_case_log_thread on the authority alone).
    for sql, plan in reads.items():
        assert "ix_case_log_thread (authority=? AND correlation_id=?)" in plan, (sql, plan)
