"""The receiver's side of the ledger: duplicates, the inbox, acknowledgements and receipts owed."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Update,
    bindparam,
    exists,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.selectable import CompoundSelect

from gateway.ledger.bodies import BODY
from gateway.ledger.core import LedgerCore, as_utc
from gateway.ledger.in_lists import bind, in_list, size_of
from gateway.ledger.records import (
    InboundKnown,
    InboundSeen,
    InboxItem,
    ReceiptDue,
)
from gateway.ledger.status import HANDED_OVER, IN_INBOX, Direction, Route, Status
from gateway.ledger.tables import EITHER_DIRECTION, history, messages


# The recording transaction's reads, built once with bound parameters (found in
# SQLAlchemy's compiled cache, not rebuilt per batch), one per size of their list
# of ids (``in_lists``: no expanding parameters). They name the ids, so that an
# index finds the rows (``ix_messages_message_id``); by (direction, authority)
# alone they scanned every message the authority had received, for every batch
# (issue 14). Every sender's rows of those ids are read, and the authority's own
# sends under them: a message id names one message of an authority, whoever sent
# it (``InboundKnown.holders``). Both directions named, so the index is searched.
def _inbound(ids: int) -> tuple[ColumnElement[bool], ...]:
    return (
        EITHER_DIRECTION,
        messages.c.authority == bindparam("authority"),
        in_list(messages.c.message_id, "ids", ids),
    )


@functools.cache
def _inbound_known(ids: int) -> Select[str, str, str, str, int, str, str]:
    return select(
        messages.c.direction,
        messages.c.sender,
        messages.c.message_id,
        messages.c.digest,
        messages.c.id,
        messages.c.status,
        messages.c.receipt_message_id,
    ).where(*_inbound(ids))


def _inbound_params(authority: str, ids: list[str]) -> tuple[int, dict[str, object]]:
    """The size of ``_inbound`` for these ids, and its parameters."""
    size = size_of(ids)
    return size, {"authority": authority, **bind("ids", ids, size)}


# The first message with the content, not all of them: a record sent again and
# again (or a bench sending one record thousands of times) had this read fetch
# every earlier copy, so each copy cost more than the last (issue 14). On SQLite
# the content index ends in the row id, so this stops at the first row.
# Digests per statement, padded to one of these counts: each count is a statement
# of its own in SQLAlchemy's compiled cache, about 24 KB a digest; a statement for
# every count up to 100 held 120 MB more in a receiving gateway.
_CONTENT_SHAPES = (1, 4, 16)
_CONTENTS_PER_READ = _CONTENT_SHAPES[-1]


# Inbound rows whose record the local system was never handed and never will be:
# a copy of the same content received later is handed over, not taken for a
# duplicate. Quarantined (refused), withdrawn (recalled or erased before the local
# system had it), a duplicate (recorded so, never handed over: its original is
# what counts) and an undeliverable one never placed with it (``HANDED_OVER``). A
# dead-lettered one is not here: an administrator may replay it.
NOT_HANDED_OVER = (Status.QUARANTINED.value, Status.WITHDRAWN.value, Status.DUPLICATE.value)


@functools.lru_cache(maxsize=len(_CONTENT_SHAPES))
def _first_with_content(count: int) -> CompoundSelect[str, str]:
    """Of ``count`` content digests (bound as :c0, :c1, ...), the first inbound message
    from :sender to :authority that carried each and was handed over or is to be
    (``NOT_HANDED_OVER`` do not count): one statement, each digest found from the
    index ``ix_messages_content`` and read no further than its first row, however
    often the content came again (while its first copy counts)."""
    branches = [
        select(
            select(messages.c.content_digest, messages.c.message_id)
            .where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == bindparam("authority"),
                messages.c.sender == bindparam("sender"),
                messages.c.content_digest == bindparam(f"c{i}"),
                messages.c.status.not_in(NOT_HANDED_OVER),
                or_(
                    messages.c.status != Status.UNDELIVERABLE.value,
                    # Placed with the local system once (a drop file it may still read):
                    # it counts, as the sender may not know.
                    exists().where(
                        history.c.message_pk == messages.c.id, history.c.status.in_(HANDED_OVER)
                    ),
                ),
            )
            .order_by(messages.c.id)
            .limit(1)
            .subquery()
        )
        for i in range(count)
    ]
    return union_all(*branches)


# The receipt loop's reads and writes, once per receipt: built once per size of
# their lists of authorities and rows (``in_lists``: no expanding parameters; a
# received batch's own receipt bound four, issue 14).
@functools.cache
def _receipts_due(authorities: int, pks: int | None) -> Select[int, str, str, str, str, str, str]:
    """Of ``authorities``' messages owed a receipt (of the rows ``pks`` only, unless
    None), the first :limit, locked."""
    query = select(
        messages.c.id,
        messages.c.authority,
        messages.c.sender,
        messages.c.message_id,
        messages.c.digest,
        messages.c.status,
        messages.c.reason,
    ).where(
        messages.c.receipt_due.is_(True),
        in_list(messages.c.authority, "authorities", authorities),
    )
    if pks is not None:
        # A received batch's own rows, receipted by its transaction.
        query = query.where(in_list(messages.c.id, "pks", pks))
    return query.order_by(messages.c.id).limit(bindparam("limit")).with_for_update(skip_locked=True)


@functools.cache
def _any_receipt_due(authorities: int) -> Select[int]:
    """Whether any of them is owed one (without locking it)."""
    return (
        select(messages.c.id)
        .where(
            messages.c.receipt_due.is_(True),
            in_list(messages.c.authority, "authorities", authorities),
        )
        .limit(1)
    )


@functools.cache
def _receipted(pks: int) -> Update:
    return (
        update(messages)
        .where(in_list(messages.c.id, "pks", pks), messages.c.receipt_due.is_(True))
        .values(receipt_due=False, receipt_message_id=bindparam("receipt_id"))
    )


_INBOX_COLUMNS = (
    messages.c.id,
    messages.c.message_id,
    messages.c.sender,
    messages.c.recipient,
    messages.c.message_type,
    messages.c.correlation_id,
    messages.c.status,
    messages.c.created_at,
    BODY,
    messages.c.restricted,
)


class InboundQueries(LedgerCore):
    """Queries and moves of inbound messages."""

    # --- inbound ------------------------------------------------------------

    def inbound_known(
        self, authority: str, pairs: Iterable[tuple[str, str]], conn: Connection
    ) -> InboundKnown:
        """Every inbound row already recorded for these ``(sender, message_id)`` pairs:
        those not quarantined (``seen``: is a message new?) and all of them (``rows``:
        is a row to record there already?), and who sent the message each id names
        (``holders``: any sender's inbound row not quarantined, or the authority's
        own outbound one), in one read (issue 14).

        The recording transaction reads them once it holds the pairs' locks: rows
        are never deleted nor their keys changed, and only the pipeline, under those
        locks, records inbound rows, so the answer holds until it records its own.
        """
        wanted = frozenset(pairs)
        seen: dict[tuple[str, str], InboundSeen] = {}
        rows: dict[tuple[str, str, str | None], int] = {}
        holders: dict[str, str] = {}
        if not wanted:
            return InboundKnown(seen, rows, holders)
        size, params = _inbound_params(authority, sorted({m for _, m in wanted}))
        for direction, sender, message_id, digest, pk, status, receipt_id in conn.execute(
            _inbound_known(size), params
        ):
            if direction == Direction.OUTBOUND.value:
                holders[message_id] = sender  # its own send: a peer echoing the id back
                continue
            asked = (sender, message_id) in wanted
            if asked:
                rows[(sender, message_id, digest)] = pk
            if status == Status.QUARANTINED.value:
                continue
            holders[message_id] = sender
            if asked:
                seen[(sender, message_id)] = InboundSeen(pk, digest, Status(status), receipt_id)
        return InboundKnown(seen, rows, holders)

    def same_content(
        self, conn: Connection, authority: str, sender: str, digests: Sequence[str]
    ) -> dict[str, str]:
        """Content digest -> the id of the first inbound message from ``sender`` that
        carried that content to ``authority`` (quarantined ones do not count)."""
        unique = list(dict.fromkeys(digests))
        found: dict[str, str] = {}
        for start in range(0, len(unique), _CONTENTS_PER_READ):
            chunk = unique[start : start + _CONTENTS_PER_READ]
            shape = next(n for n in _CONTENT_SHAPES if n >= len(chunk))
            chunk += chunk[-1:] * (shape - len(chunk))  # a digest asked twice, found twice
            params = {"authority": authority, "sender": sender}
            params.update({f"c{i}": content for i, content in enumerate(chunk)})
            for content, message_id in conn.execute(_first_with_content(shape), params):
                found[content] = message_id
        return found

    def inbox(
        self, authority: str, limit: int = 100, include_restricted: bool = False
    ) -> list[InboxItem]:
        """Messages received for ``authority`` that its local system has not acknowledged.

        One read per inbox status, each in row order from the inbox index and
        stopping at ``limit``, then merged: with the statuses as one ``IN``, the
        database sorted every waiting message to serve the first ``limit``, and a
        backlog made every poll slower (issue 14).
        """
        conditions = [
            messages.c.direction == Direction.INBOUND.value,
            messages.c.authority == authority,
            messages.c.message_type != "Receipt",
            messages.c.route == Route.INBOX.value,
        ]
        if not include_restricted:
            conditions.append(messages.c.restricted.is_(False))
        with self.transaction() as conn:
            rows = [
                row
                for status in sorted(IN_INBOX)
                for row in conn.execute(
                    select(*_INBOX_COLUMNS)
                    .where(*conditions, messages.c.status == status.value)
                    .order_by(messages.c.id)
                    .limit(limit)
                ).all()
            ]
        rows.sort(key=lambda r: int(r[0]))
        return [
            InboxItem(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                Status(r[6]),
                as_utc(r[7]),
                bytes(r[8] or b""),
                bool(r[9]),
            )
            for r in rows[:limit]
        ]

    def acknowledge_local(self, authority: str, message_id: str) -> bool:
        """The local system took the message; False if it is not in the inbox.

        The move is conditional (still in the inbox), so of two acknowledgements
        of one message, even at the same moment on two replicas, one moves it;
        ``inbound_status`` tells the other why it did not.
        """
        with self.transaction() as conn:
            pks = [
                int(r[0])
                for r in conn.execute(
                    select(messages.c.id).where(
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.authority == authority,
                        messages.c.message_id == message_id,
                        messages.c.status.in_([s.value for s in IN_INBOX]),
                    )
                ).all()
            ]
            return bool(
                self.transition_from(
                    pks, IN_INBOX, Status.ACKNOWLEDGED, "local system acknowledged", conn
                )
            )

    def acknowledge_local_many(
        self, authority: str, message_ids: Sequence[str]
    ) -> tuple[frozenset[str], dict[str, Status | None]]:
        """``acknowledge_local`` for many messages in one transaction.

        Returns the ids acknowledged now, and for every other id its status as
        ``inbound_status`` reads it (ACKNOWLEDGED: acknowledged before; None or
        another status: not in the inbox). Each move is conditional as the
        single one is: of two batches naming one message, even on two
        replicas, one moves it.
        """
        wanted = list(dict.fromkeys(message_ids))
        if not wanted:
            return frozenset(), {}
        with self.transaction() as conn:
            rows = conn.execute(
                select(messages.c.id, messages.c.message_id).where(
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.authority == authority,
                    messages.c.message_id.in_(wanted),
                    messages.c.status.in_([s.value for s in IN_INBOX]),
                )
            ).all()
            by_pk = {int(pk): mid for pk, mid in rows}
            moved = self.transition_from(
                list(by_pk), IN_INBOX, Status.ACKNOWLEDGED, "local system acknowledged", conn
            )
            done = frozenset(by_pk[pk] for pk in moved)
            rest = [m for m in wanted if m not in done]
            found: dict[str, list[Status]] = {m: [] for m in rest}
            if rest:
                for mid, status in conn.execute(
                    select(messages.c.message_id, messages.c.status)
                    .where(
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.authority == authority,
                        messages.c.message_id.in_(rest),
                    )
                    .order_by(messages.c.id)
                ).all():
                    found[mid].append(Status(status))
        others: dict[str, Status | None] = {}
        for mid, statuses in found.items():
            kept = [s for s in statuses if s != Status.QUARANTINED]
            others[mid] = (kept or statuses or [None])[0]
        return done, others

    def inbound_status(self, authority: str, message_id: str) -> Status | None:
        """The status of ``authority``'s inbound message ``message_id`` (None if there is none;
        a quarantined copy counts only when there is nothing else)."""
        with self.transaction() as conn:
            rows = conn.execute(
                select(messages.c.status)
                .where(
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.authority == authority,
                    messages.c.message_id == message_id,
                )
                .order_by(messages.c.id)
            ).all()
        statuses = [Status(r[0]) for r in rows]
        kept = [s for s in statuses if s != Status.QUARANTINED]
        return (kept or statuses or [None])[0]

    def claim_receipts_due(
        self,
        conn: Connection,
        authorities: Sequence[str],
        limit: int,
        pks: Sequence[int] | None = None,
    ) -> list[ReceiptDue]:
        """Lock and return up to ``limit`` of ``authorities``' messages owed a receipt
        (of the rows ``pks`` only, when given).

        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: the rows stay locked by
        ``conn``'s transaction, which records the receipt covering them and
        ``mark_receipted``s them, so two replicas never receipt the same
        message; a replica that dies mid-way leaves its rows unlocked (its
        transaction rolls back) for the next one. SQLite has one process.
        """
        if not authorities or (pks is not None and not pks):
            return []
        size = size_of(authorities)
        params: dict[str, object] = {"limit": limit, **bind("authorities", authorities, size)}
        pks_size = None
        if pks is not None:
            pks_size = size_of(pks)
            params.update(bind("pks", pks, pks_size))
        rows = conn.execute(_receipts_due(size, pks_size), params).all()
        return [ReceiptDue(r[0], r[1], r[2], r[3], r[4] or "", Status(r[5]), r[6]) for r in rows]

    def receipts_owed(self, conn: Connection, authorities: Sequence[str]) -> bool:
        """Whether any of ``authorities``' messages is owed a receipt, as ``conn`` sees it."""
        if not authorities:
            return False
        size = size_of(authorities)
        found = conn.execute(_any_receipt_due(size), bind("authorities", authorities, size)).first()
        return found is not None

    def mark_receipted(self, pks: Sequence[int], receipt_message_id: str, conn: Connection) -> int:
        """Mark messages still owed a receipt as covered by ``receipt_message_id``; how
        many were (fewer than ``pks``: another transaction receipted the rest)."""
        if not pks:
            return 0  # as ``IN ()``: nothing matches
        size = size_of(pks)
        params = bind("pks", pks, size)
        params["receipt_id"] = receipt_message_id
        result = conn.execute(_receipted(size), params)
        return int(result.rowcount)

    def body_of(self, authority: str, direction: Direction, message_id: str) -> bytes | None:
        with self.transaction() as conn:
            row = conn.execute(
                select(BODY).where(
                    messages.c.authority == authority,
                    messages.c.direction == direction.value,
                    messages.c.message_id == message_id,
                )
            ).first()
        return None if row is None or row[0] is None else bytes(row[0])
