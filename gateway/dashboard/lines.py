"""One message as the dashboard shows it: ids, types, authorities, status, a safe reason.

Reasons pass through the redactor in case one quotes an identifier; a
rejected record's reasons quote the offending values ("... (31/04/2014)"),
which may be a child's data, so the dashboard names the field, not the value.
A long reason (a record with many problems) is summarised on one line, the
full list kept for when the row is opened.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.api.auth import Caller
from gateway.ledger.bodies import without_body
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ops import attention
from gateway.ops.redact import redact_text

_QUOTED_VALUE = re.compile(r" \([^()]*\)(?=\s|$)")
# FILE:RECORD:FIELD: reason  (a FieldProblem, see gateway.errors)
_PROBLEM = re.compile(r"^(?P<where>[^:\n]+:[^:\n]+):(?P<field>[^:\n]+): ")
SUMMARY_CHARS = 160


@dataclass(frozen=True)
class MessageLine:
    message_id: str
    authority: str
    direction: str
    message_type: str
    counterparty: str
    sender: str  # whose message (the authority's own for a send): what a dismissal names
    status: str
    need: str | None  # why it needs a human (gateway.ops.attention.Need), if it does
    summary: str | None  # the reason on one line
    reason: str | None  # the whole reason (redacted)
    attempts: int
    updated_at: datetime
    deadline: datetime | None
    overdue: bool
    can_replay: bool
    can_dismiss: bool
    digest: str | None = None  # of its bytes: names it among dead letters sharing its id
    erased: bool = False
    """A dead letter whose body was erased here (retention, an erasure): nothing to
    replay; dismissing it is all that is left."""


def safe_reason(status: Status, reason: str | None) -> str | None:
    """A reason recorded with ``status``, as the dashboard may show it."""
    if not reason:
        return None
    if status == Status.REJECTED:
        reason = _QUOTED_VALUE.sub(" (value hidden)", reason)
    return redact_text(reason)


def shown_reason(r: MessageRecord) -> str | None:
    """The reason of ``r`` as the dashboard may show it."""
    return safe_reason(r.status, r.reason)


def summarise(reason: str | None) -> str | None:
    """One line: a record's problems as ``FILE:ROW: n problems (FIELD, FIELD, ...)``."""
    if reason is None:
        return None
    lines = [line for line in reason.splitlines() if line.strip()]
    found = [m for m in (_PROBLEM.match(line) for line in lines) if m]
    if len(lines) > 1 and len(found) == len(lines):
        wheres = {m["where"] for m in found}
        fields = list(dict.fromkeys(m["field"] for m in found))
        where = wheres.pop() if len(wheres) == 1 else f"{len(wheres)} records"
        text = f"{where}: {len(lines)} problems ({', '.join(fields)})"
    else:
        text = " ".join(lines)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def lines_of(
    ledger: Ledger, records: Sequence[MessageRecord], who: Caller, now: datetime
) -> list[MessageLine]:
    """``line_of`` each of ``records``, their dead letters' bodies looked up at once."""
    erased = erased_dead_letters(ledger, records)
    return [line_of(r, who, now, erased=r.pk in erased) for r in records]


def erased_dead_letters(ledger: Ledger, records: Sequence[MessageRecord]) -> set[int]:
    """The keys of those of ``records`` that are dead letters with no body here (erased:
    nothing to replay); one read, and none when there is no dead letter among them."""
    dead = [r.pk for r in records if r.status == Status.DEAD_LETTERED]
    if not dead:
        return set()
    with ledger.transaction() as conn:
        return without_body(conn, dead)


def line_of(r: MessageRecord, who: Caller, now: datetime, *, erased: bool) -> MessageLine:
    """How the dashboard shows ``r``; ``erased``: it has no body here (``lines_of``)."""
    outbound = r.direction == Direction.OUTBOUND
    deadline = r.next_attempt_at if r.status == Status.SENT else None
    need = attention.need_of(r.status, r.direction, r.attempts)
    reason = shown_reason(r)
    return MessageLine(
        message_id=r.message_id,
        authority=r.authority,
        direction=r.direction.value,
        message_type=r.message_type,
        counterparty=r.recipient if outbound else r.sender,
        sender=r.sender,
        status=r.status.value,
        need=need.value if need else None,
        summary=summarise(reason),
        reason=reason,
        attempts=r.attempts,
        updated_at=r.updated_at,
        deadline=deadline,
        overdue=deadline is not None and deadline < now,
        # Outbound dead letters are re-published, inbound ones handed over again.
        can_replay=who.is_admin and r.status == Status.DEAD_LETTERED and not erased,
        can_dismiss=who.may_see(r.authority) and r.status in attention.DISMISSABLE,
        digest=r.digest,
        erased=erased and r.status == Status.DEAD_LETTERED,
    )
