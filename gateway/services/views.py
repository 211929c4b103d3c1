"""Read models for the API and CLI: consent, case threads, the issues log.

An authority sees only its own register, threads and copy of the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from gateway.cases import store as cases
from gateway.crossborder import consent_store
from gateway.crossborder.children import resolve_child
from gateway.crossborder.issues_store import LoggedIssue, listing
from gateway.errors import NotFoundError
from gateway.feature import Kit
from gateway.ledger.core import as_utc
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction
from gateway.model import Purpose
from gateway.policy import consent as consent_rules
from gateway.retention.tables import tombstones


@dataclass(frozen=True)
class ConsentView:
    child_key: str
    given: bool
    decided_by_child: bool
    active_scopes: tuple[str, ...]
    withdrawn_scopes: tuple[str, ...]
    named_las: tuple[str, ...]
    consent_ref: str | None
    history: tuple[consent_rules.RegisterEntry, ...]


@dataclass(frozen=True)
class CaseView:
    thread: cases.CaseThread
    messages: tuple[MessageRecord, ...]


def consent_of(gw: Kit, authority: str, ref: str) -> ConsentView:
    """The consent in force for a child at ``authority`` and its history."""
    key = resolve_child(gw, authority, ref)
    with gw.ledger.transaction() as conn:
        history = consent_store.entries(conn, authority, key)
    if not history:
        raise NotFoundError(f"child {ref} not found")
    current = consent_rules.effective(history)
    return ConsentView(
        child_key=key,
        given=current.given,
        decided_by_child=bool(current.entry and current.entry.by_competent_child),
        active_scopes=tuple(sorted(s.value for s in current.active_scopes())),
        withdrawn_scopes=tuple(sorted(s.value for s in current.withdrawn_scopes())),
        named_las=current.named_las,
        consent_ref=current.reference(authority),
        history=tuple(history),
    )


def case_of(gw: Kit, authority: str, correlation_id: str) -> CaseView:
    """The case thread at ``authority`` with its log and messages."""
    with gw.ledger.transaction() as conn:
        thread = cases.get(conn, authority, correlation_id[:64], with_log=True)
    if thread is None:
        raise NotFoundError(f"case {correlation_id} not found")
    records = gw.ledger.find(
        authority=authority, correlation_id=thread.correlation_id, limit=1000, with_history=False
    )
    return CaseView(thread, tuple(r for r in records if r.message_type != "Receipt"))


def issues_of(gw: Kit, authority: str, limit: int = 500) -> list[LoggedIssue]:
    with gw.ledger.transaction() as conn:
        return listing(conn, authority, limit)


@dataclass(frozen=True)
class ExistenceAnswer:
    """What this authority holds of an existence query it sent: the answer (``match=...``)
    once it came; and, once the query was erased here, when and under which rule. An
    erasure of the child erases the answer with the query; at the query's retention
    period the answer (no personal data) stays for its own."""

    answer: str | None
    answered_at: datetime | None
    erased_at: datetime | None = None
    erased_under: str | None = None

    def describe(self) -> str:
        erased = (
            None
            if self.erased_at is None
            else f"erased here {self.erased_at:%Y-%m-%d %H:%M} UTC ({self.erased_under})"
        )
        if self.answer is not None:
            return self.answer if erased is None else f"{self.answer} (the query was {erased})"
        if erased is not None:
            return f"{erased}: an answer, if one came, is no longer held"
        return "no answer yet"


def existence_answer(gw: Kit, authority: str, query_id: str) -> ExistenceAnswer:
    """The answer received for an existence query ``authority`` sent, if any yet."""
    records = gw.ledger.find(
        message_id=query_id[:64],
        authority=authority,
        direction=Direction.OUTBOUND,
        with_history=False,
    )
    if (
        not records
        or records[0].message_type != "Notification"
        or records[0].purpose != Purpose.EXISTENCE_CHECK.value
    ):
        raise NotFoundError(f"existence query {query_id} not found")
    with gw.ledger.transaction() as conn:
        found = cases.logged(
            conn,
            authority,
            records[0].correlation_id,
            "NOTICE_RECEIVED:EXISTENCE_ANSWER",
            query_id[:64],
        )
        erased = conn.execute(
            select(tombstones.c.erased_at, tombstones.c.rule).where(
                tombstones.c.message_pk == records[0].pk
            )
        ).first()
    return ExistenceAnswer(
        answer=None if found is None else (found.detail or ""),
        answered_at=None if found is None else found.at,
        erased_at=None if erased is None else as_utc(erased.erased_at),
        erased_under=None if erased is None else str(erased.rule),
    )
