"""Finding messages: by id, case reference, child, status, direction, type, peer and date.

Read-only. The caller decides which authorities' rows may be searched
(``Criteria.authorities``); nothing outside them is ever read. Ids and case
references match whole or by their beginning (``MIN_PREFIX`` characters or
more), so the first characters of a message id found in a log line are enough;
a case reference whatever the case of its ASCII letters, an id as typed, in
lower case or in upper case. Each is a range of an index (``ledger.prefix``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    func,
    literal,
    or_,
    select,
    union_all,
)

from gateway.ledger.core import as_utc
from gateway.ledger.prefix import bytewise, fold_ascii, starting_with
from gateway.ledger.records import HistoryEntry, MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger, newest_of_each
from gateway.ledger.tables import EITHER_DIRECTION, history, messages
from gateway.ledger.unindexed import unindexed

MIN_PREFIX = 4
MAX_LIMIT = 500
# Of several authorities, a page is read one authority at a time and merged
# (``search``) while the rows read, each authority's up to the page's end, come to
# no more than this: each is made a Python object (about 6 us here), where one
# statement sorts the rows it reads in SQLite's C (well under 1 us each).
MERGED_MAX = 2_000
# Where most messages end: a search for one of these walks the messages newest
# first, where one for any other finds the few in it by the statuses' index.
SETTLED = frozenset({Status.DELIVERED, Status.DELIVERED_LOCAL, Status.ACKNOWLEDGED})
# A search by a case reference's beginning, or for what changed since a time, is served
# by its index while fewer than this many messages match (counted there, no further:
# ``_fewer_than_max``): read and sorted, at most about 30 ms here. Past that, the newest
# messages are walked until the page is full, as without it: quick if many of the newest
# match, but through every newer message if they are all old (last year's ``DUD-2025``).
FEW_MAX = 10_000


@dataclass(frozen=True)
class Criteria:
    """Every field given must match; ``authorities`` bounds the search."""

    authorities: tuple[str, ...]
    message_id: str | None = None
    case_ref: str | None = None
    child_key: str | None = None
    correlation_id: str | None = None
    statuses: tuple[Status, ...] = ()
    direction: Direction | None = None
    message_type: str | None = None
    counterparty: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    include_receipts: bool = False
    include_restricted: bool = True
    limit: int = 100
    offset: int = 0


def _typed(text: str | None) -> str | None:
    """An id or a case reference as searched: without the spaces around it, at most 64
    characters; none if nothing is left (a search box left empty or blank)."""
    return (text or "").strip()[:64] or None


def _whole(text: str) -> bool:
    """Whether ``text`` is too short to be a beginning (``MIN_PREFIX``): matched whole."""
    return len(text) < MIN_PREFIX


def _message_id(text: str, owners: ColumnElement[bool]) -> ColumnElement[bool]:
    """The id ``text``, or (``MIN_PREFIX`` characters or more) the ids beginning with it:
    as typed, in lower case or in upper case. Ids are lower-case UUIDs (the schema's
    ``Uuid``; the gateway's own are made so), but a quarantined message's is kept as it
    came. ``owners``: the authorities' condition.

    Each spelling is a range of the id index read on its own, the rows found by key:
    as an ``OR`` of the ranges beside the authority, SQLite took every message of the
    authority from another index instead."""
    if _whole(text):
        return messages.c.message_id == text
    spellings = dict.fromkeys((text, text.lower(), text.upper()))
    found = union_all(
        *(
            select(messages.c.id).where(
                EITHER_DIRECTION, owners, starting_with(bytewise(messages.c.message_id), each)
            )
            for each in spellings
        )
    )
    return messages.c.id.in_(found.scalar_subquery())


def _case_ref(text: str) -> ColumnElement[bool]:
    """The case reference ``text`` (or, ``MIN_PREFIX`` characters or more, those beginning
    with it), whatever the case of its ASCII letters."""
    folded = func.upper(bytewise(messages.c.case_ref))
    if _whole(text):
        return folded == fold_ascii(text)
    return starting_with(folded, fold_ascii(text))


def _few(c: Criteria) -> bool:
    """Whether ``c`` looks for few rows that an index of their own finds (a child's, a
    thread's, an id's, those in a status most messages do not end in): SQLite must then
    not walk ``ix_messages_made``, which it prefers as it needs no sort, through every
    message of the authority (or of the dates asked) when fewer match than a page.

    A case reference's beginning may be shared by most of an authority's messages
    (``DUD-2026``): it is few if its index holds fewer than ``FEW_MAX`` of them
    (``_fewer_than_max``); a reference too short to be a beginning is one case's."""
    return bool(
        c.child_key
        or c.correlation_id
        or c.message_id
        or (c.case_ref is not None and _whole(c.case_ref))  # one case's
        or (c.statuses and not SETTLED.intersection(c.statuses))
    )


def _fewer_than_max(conn: Connection, authorities: list[str], *where: ColumnElement[bool]) -> bool:
    """Whether fewer than ``FEW_MAX`` messages of ``authorities`` match ``where`` (a case
    reference's beginning, a change since a time), counted in the index that serves it
    no further: an authority at a time, as over several SQLite counted every entry of
    them in another (``ix_messages_case``, for a case)."""
    matching = (
        select(literal(1))
        .where(messages.c.authority == bindparam("authority"), *where)
        .limit(bindparam("left"))
        .subquery()
    )
    count = select(func.count()).select_from(matching)
    left = FEW_MAX
    for code in authorities:
        left -= int(conn.execute(count, {"authority": code, "left": left}).scalar_one())
        if left <= 0:
            return False
    return True


@dataclass(frozen=True)
class _Named:
    """How the page's statement names what SQLite may search it by (``search``)."""

    owners: ColumnElement[bool]  # the authorities', as an index's first column
    made: ColumnElement[datetime]  # when made, as ordered by
    changed: ColumnElement[datetime]  # when last changed
    by_key: bool  # an id's beginning: its rows found by key (``_message_id``)


def _conditions(c: Criteria, named: _Named) -> list[ColumnElement[bool]]:
    """What ``c`` asks of a message, named as ``named`` says."""
    m = messages.c
    found: list[ColumnElement[bool]] = []
    searched = c.child_key or c.statuses or c.case_ref or (c.message_id and not named.by_key)
    if c.direction is None and searched:
        found.append(EITHER_DIRECTION)  # before the column searched, in its index
    if c.message_id:
        found.append(_message_id(c.message_id, named.owners))
    if c.case_ref:
        found.append(_case_ref(c.case_ref))
    if c.child_key:
        found.append(m.child_key == c.child_key)
    if c.correlation_id:
        found.append(m.correlation_id == c.correlation_id[:64])
    if c.statuses:
        found.append(m.status.in_([s.value for s in c.statuses]))
    if c.direction is not None:
        # Beside an id's rows found by key, SQLite searched every message of the direction.
        direction = unindexed(m.direction) if named.by_key else m.direction
        found.append(direction == c.direction.value)
    if c.message_type:
        found.append(m.message_type == c.message_type)
    elif not c.include_receipts:
        found.append(m.message_type != "Receipt")
    if c.counterparty:
        found.append(or_(m.sender == c.counterparty, m.recipient == c.counterparty))
    if c.created_from is not None:
        found.append(named.made >= c.created_from)
    if c.created_to is not None:
        found.append(named.made < c.created_to)
    if c.updated_from is not None:
        found.append(named.changed >= c.updated_from)
    if not c.include_restricted:
        found.append(m.restricted.is_(False))
    return found


def search(ledger: Ledger, c: Criteria) -> list[MessageRecord]:
    """Messages matching ``c``, newest first (without their history; ``Ledger.find`` adds it).

    Read from the end of each authority's part of ``ix_messages_made``, in that
    order, no further than the page: one statement over several authorities
    sorted every message of them at each page (issue 14). Of several
    authorities, each one's newest rows up to the page's end are merged and the
    page cut from them, while they are few (``MERGED_MAX``); past that, one
    statement, sorted whole, costs less.
    """
    authorities = sorted(set(c.authorities))
    if not authorities:
        return []
    c = replace(c, message_id=_typed(c.message_id), case_ref=_typed(c.case_ref))
    limit, offset = max(1, min(c.limit, MAX_LIMIT)), max(0, c.offset)
    merged = len(authorities) > 1 and len(authorities) * (offset + limit) <= MERGED_MAX

    def of_authorities(authority: ColumnElement[str]) -> ColumnElement[bool]:
        return authority == bindparam("authority") if merged else authority.in_(authorities)

    owners = of_authorities(messages.c.authority)
    by_key = c.message_id is not None and not _whole(c.message_id)
    # An id's rows are found by key (``_message_id``): by the authority, SQLite read every
    # message of it.
    outer = of_authorities(unindexed(messages.c.authority)) if by_key else owners
    with ledger.transaction() as conn:
        cases = [EITHER_DIRECTION, _case_ref(c.case_ref)] if c.case_ref else []
        few = _few(c) or bool(cases and _fewer_than_max(conn, authorities, *cases))
        # Few changed since: read from ``ix_messages_changed`` and sorted (a local system
        # asking what changed since its last look); many: the newest walked, as without.
        changed_few = (
            not few
            and c.updated_from is not None
            and _fewer_than_max(conn, authorities, messages.c.updated_at >= c.updated_from)
        )
        changed = messages.c.updated_at
        named = _Named(
            owners=owners,
            made=unindexed(messages.c.created_at) if few or changed_few else messages.c.created_at,
            changed=changed if changed_few else unindexed(changed),
            by_key=by_key,
        )
        query = (
            ledger._record_select()
            .where(outer, *_conditions(c, named))
            .order_by(named.made.desc(), messages.c.id.desc())
            .limit(offset + limit if merged else limit)
            .offset(0 if merged else offset)
        )
        if not merged:
            return [ledger._to_record(r) for r in conn.execute(query).all()]
        rows = newest_of_each(conn, query, authorities, messages.c.created_at)
    return [ledger._to_record(r) for r in rows[offset : offset + limit]]


def with_history(ledger: Ledger, records: list[MessageRecord]) -> list[MessageRecord]:
    """``records`` with their status histories (one query)."""
    if not records:
        return records
    by_pk: dict[int, list[HistoryEntry]] = {r.pk: [] for r in records}
    with ledger.transaction() as conn:
        for pk, st, at, reason in conn.execute(
            select(history.c.message_pk, history.c.status, history.c.at, history.c.reason)
            .where(history.c.message_pk.in_(list(by_pk)))
            .order_by(history.c.id)
        ).all():
            by_pk[pk].append(HistoryEntry(Status(st), as_utc(at), reason))
    return [replace(r, history=tuple(by_pk[r.pk])) for r in records]
