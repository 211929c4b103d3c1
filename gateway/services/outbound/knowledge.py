"""What the sending authority knows, read from its ledger in one place, for the
outbound decision (``policy.decision``) to judge. Nothing here decides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from gateway.cases import store as cases
from gateway.crossborder import consent_store
from gateway.crossborder.issues_store import issues_log
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import DISCLOSING, HAS_LEFT, OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import messages, under_id
from gateway.model import LegalBasis, Purpose
from gateway.policy.consent import RegisterEntry
from gateway.policy.decision import HeldCopy, QueuedCopy

# Sent or on its way: identical content to the same recipient is not sent again.
CARRIED = (*HAS_LEFT, Status.SIGNED.value, Status.REPLAYED.value)

# Every read below runs once per accepted record: each statement is built once
# with bound parameters, so SQLAlchemy finds it in its compiled cache instead
# of building and keying it again for every record (docs/performance.md).
_OWN_OUTBOUND = (
    messages.c.direction == Direction.OUTBOUND.value,
    messages.c.authority == bindparam("authority"),
)
_PAST_RECIPIENTS = (
    select(messages.c.recipient)
    .where(
        *_OWN_OUTBOUND,
        messages.c.child_key == bindparam("child_key"),
        messages.c.legal_basis.in_(DISCLOSING),
        messages.c.status.in_(HAS_LEFT),
        messages.c.recipient != bindparam("authority"),
    )
    .distinct()
)
# Held copies are picked out of the child's (or one case's) outbound messages
# here, not by the statement: with the status in it, SQLite answered from the
# index of every held message of the authority (``ix_messages_inbox``), so the
# read grew with all the authority's held copies (issue 14). Found by the
# child's index and the case's, each read returns that child's (case's) own.
_OUTBOUND_COLUMNS = (
    messages.c.id,
    messages.c.message_id,
    messages.c.recipient,
    messages.c.purpose,
    messages.c.case_ref,
    messages.c.child_key,
    messages.c.status,
    HAS_BODY,
)
_CHILD_OUTBOUND = (
    select(*_OUTBOUND_COLUMNS)
    .where(*_OWN_OUTBOUND, messages.c.child_key == bindparam("child_key"))
    .order_by(messages.c.id)
)
_CASE_OUTBOUND = (
    select(*_OUTBOUND_COLUMNS)
    .where(*_OWN_OUTBOUND, messages.c.case_ref == bindparam("case_ref"))
    .order_by(messages.c.id)
)
_QUEUED = select(messages.c.id, messages.c.recipient).where(
    *_OWN_OUTBOUND,
    messages.c.child_key == bindparam("child_key"),
    messages.c.legal_basis == LegalBasis.CONSENT.value,
    messages.c.status.in_([s.value for s in OUTBOX_STATES]),
)
_SENT_CONTENT = select(
    messages.c.recipient, messages.c.content_digest, messages.c.message_id
).where(
    *_OWN_OUTBOUND,
    messages.c.case_ref == bindparam("case_ref"),
    messages.c.content_digest.is_not(None),
    messages.c.status.in_(CARRIED),
)
_ISSUE_IDS = select(issues_log.c.entry_id).where(
    issues_log.c.authority == bindparam("authority"),
    issues_log.c.entry_id.in_(bindparam("ids", expanding=True)),
)


def past_recipients(conn: Connection, authority: str, child_key: str) -> tuple[str, ...]:
    """Other authorities that ``authority`` has sent personal data about the child to."""
    rows = conn.execute(_PAST_RECIPIENTS, {"authority": authority, "child_key": child_key}).all()
    return tuple(sorted(r[0] for r in rows))


def held_copies(conn: Connection, authority: str, child_key: str) -> tuple[HeldCopy, ...]:
    """Records of the child held locally for another authority, oldest first."""
    rows = conn.execute(_CHILD_OUTBOUND, {"authority": authority, "child_key": child_key}).all()
    return _held(rows, authority, child_key)


def held_copies_of_case(
    conn: Connection, authority: str, child_key: str, case_ref: str
) -> tuple[HeldCopy, ...]:
    """``held_copies`` of the child's case ``case_ref`` only, oldest first."""
    rows = conn.execute(_CASE_OUTBOUND, {"authority": authority, "case_ref": case_ref}).all()
    return _held(rows, authority, child_key)


def _held(rows: Sequence[Any], authority: str, child_key: str) -> tuple[HeldCopy, ...]:
    """The held copies among outbound ``rows`` (``_OUTBOUND_COLUMNS``): the child's,
    for another authority, with the record still kept."""
    return tuple(
        HeldCopy(int(pk), mid, recipient, Purpose(p) if p else Purpose.SHARE_CROSS_BORDER, ref)
        for pk, mid, recipient, p, ref, key, status, kept in rows
        if status == Status.HELD_LOCAL.value
        and key == child_key
        and recipient != authority
        and kept
    )


def queued_copies(conn: Connection, authority: str, child_key: str) -> tuple[QueuedCopy, ...]:
    """Consent-based disclosures of the child queued but not yet sent."""
    rows = conn.execute(_QUEUED, {"authority": authority, "child_key": child_key}).all()
    return tuple(QueuedCopy(int(pk), recipient) for pk, recipient in rows)


def sent_content(conn: Connection, authority: str, case_ref: str) -> dict[tuple[str, str], str]:
    """(recipient, content digest) -> message id, for the case's records sent or on their way."""
    rows = conn.execute(_SENT_CONTENT, {"authority": authority, "case_ref": case_ref}).all()
    return {(r[0], r[1]): r[2] for r in rows}


def known_issue_ids(conn: Connection, authority: str, asked: frozenset[str]) -> frozenset[str]:
    """Which of the issues-log entries ``asked`` about ``authority`` has logged (none
    read when none is asked: most records raise no service gap)."""
    if not asked:
        return frozenset()
    rows = conn.execute(_ISSUE_IDS, {"authority": authority, "ids": sorted(asked)}).all()
    return frozenset(r[0] for r in rows)


def consent_history(conn: Connection, authority: str, child_key: str) -> tuple[RegisterEntry, ...]:
    return tuple(consent_store.entries(conn, authority, child_key))


def thread_notices(conn: Connection, authority: str, thread_id: str) -> frozenset[str]:
    return frozenset(cases.notice_keys(conn, authority, thread_id))


def id_used(conn: Connection, authority: str, message_id: str) -> bool:
    """Whether ``authority`` already has a message of that id (either direction)."""
    row = conn.execute(
        select(messages.c.id).where(under_id(authority, message_id)).limit(1)
    ).first()
    return row is not None
