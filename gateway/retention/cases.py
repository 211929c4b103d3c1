"""The state of a case thread, as retention needs it: open or closed, since when.

A thread's state is the ``Status`` of the newest Assessment recorded on it
(``UNKNOWN`` when there is none, or its body cannot be read, e.g. it was
sent encrypted); a CLOSED thread counts from when this gateway recorded the
closing version. The parsed state is cached per thread and re-read only
when a newer Assessment arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from gateway.envelope import xmlsafe
from gateway.errors import CafgwError
from gateway.ledger.bodies import BODY, HAS_BODY
from gateway.ledger.store import as_utc
from gateway.ledger.tables import messages
from gateway.model import NAMESPACE, CaseStatus, MessageType
from gateway.retention.tables import case_states
from gateway.settings import UNKNOWN_STATE, Limits

_STATUS = f"{{{NAMESPACE}}}Assessment/{{{NAMESPACE}}}Status"


@dataclass(frozen=True)
class ThreadState:
    correlation_id: str
    state: str  # a CaseStatus value or UNKNOWN
    closed_at: datetime | None
    last_activity: datetime  # when the newest message on the thread was recorded


def _status_of(body: bytes | None, limits: Limits) -> str | None:
    if body is None:
        return None
    try:
        root = xmlsafe.parse(
            body, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
    except CafgwError:
        return None
    found = root.find(_STATUS)
    text = (found.text or "").strip() if found is not None else ""
    return text if text in {s.value for s in CaseStatus} else None


def thread_states(
    conn: Connection, authority: str, threads: Iterable[str], limits: Limits
) -> dict[str, ThreadState]:
    """The state of each of ``authority``'s threads named in ``threads``."""
    wanted = sorted(set(threads))
    out: dict[str, ThreadState] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        activity = dict(
            conn.execute(
                select(messages.c.correlation_id, func.max(messages.c.created_at))
                .where(messages.c.authority == authority, messages.c.correlation_id.in_(chunk))
                .group_by(messages.c.correlation_id)
            ).all()
        )
        newest = dict(
            conn.execute(
                select(messages.c.correlation_id, func.max(messages.c.id))
                .where(
                    messages.c.authority == authority,
                    messages.c.correlation_id.in_(chunk),
                    messages.c.message_type == MessageType.ASSESSMENT.value,
                    HAS_BODY,
                )
                .group_by(messages.c.correlation_id)
            ).all()
        )
        cached = {
            r.correlation_id: r
            for r in conn.execute(
                select(case_states).where(
                    case_states.c.authority == authority,
                    case_states.c.correlation_id.in_(chunk),
                )
            ).all()
        }
        for thread in chunk:
            pk = newest.get(thread)
            hit = cached.get(thread)
            if hit is not None and (pk is None or hit.assessment_pk == pk):
                state, closed = hit.state, as_utc(hit.closed_at) if hit.closed_at else None
            elif pk is None:
                state, closed = UNKNOWN_STATE, None
            else:
                state, closed = _remember(conn, authority, thread, int(pk), hit is not None, limits)
            last = activity.get(thread)
            if last is not None:
                out[thread] = ThreadState(thread, state, closed, as_utc(last))
    return out


def _remember(
    conn: Connection, authority: str, thread: str, pk: int, update_row: bool, limits: Limits
) -> tuple[str, datetime | None]:
    row = conn.execute(select(BODY, messages.c.created_at).where(messages.c.id == pk)).first()
    assert row is not None
    status = _status_of(bytes(row[0]) if row[0] is not None else None, limits)
    state = status or UNKNOWN_STATE
    closed = as_utc(row[1]) if status == CaseStatus.CLOSED.value else None
    values = {"assessment_pk": pk, "state": state, "closed_at": closed, "readable": bool(status)}
    if update_row:
        conn.execute(
            update(case_states)
            .where(case_states.c.authority == authority, case_states.c.correlation_id == thread)
            .values(**values)
        )
    else:
        conn.execute(
            insert(case_states).values(authority=authority, correlation_id=thread, **values)
        )
    return state, closed
