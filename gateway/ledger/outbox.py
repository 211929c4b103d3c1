"""The sender's side of the ledger: the outbox, sends, receipt deadlines and receipts applied."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import LedgerError
from gateway.ledger.bodies import BODY, HAS_BODY
from gateway.ledger.core import ONE_MORE_ATTEMPT, LedgerCore, as_utc, handed_in
from gateway.ledger.handoff import Claimed
from gateway.ledger.in_lists import SIZES, among, bind, in_list, size_of
from gateway.ledger.records import (
    MessageRecord,
    OutboxItem,
    Receipted,
)
from gateway.ledger.status import AWAITING_RECEIPT, OUTBOX_STATES, Direction, Route, Status
from gateway.ledger.tables import history, messages
from gateway.wakeups import OUTBOX

# A receipt came back for these (whatever it said).
RECEIPTED = (Status.DELIVERED, Status.ACKNOWLEDGED, Status.REJECTED, Status.UNDELIVERABLE)

# Not held by a live claim at :now.
_FREE = or_(messages.c.claimed_until.is_(None), messages.c.claimed_until <= bindparam("now"))
# In the outbox and free.
_WAITING = and_(
    messages.c.direction == Direction.OUTBOUND.value,
    among(messages.c.status, OUTBOX_STATES),
    _FREE,
)


def _claim_statement(of_senders: bool) -> Update:
    """Claim up to :limit waiting rows (of :senders) until :lease, oldest first; one
    statement, built once, that returns what publishing needs."""
    candidates = select(messages.c.id).where(_WAITING)
    if of_senders:
        candidates = candidates.where(
            messages.c.authority.in_(bindparam("senders", expanding=True))
        )
    # A CTE materialised, read once: PostgreSQL may scan a plain IN subquery again
    # for each row it updates, and so take more than :limit rows.
    chosen = (
        candidates.order_by(messages.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("chosen")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        update(messages)
        # The rows by key: with the outbox conditions here as well, SQLite searched
        # every row in the outbox (its index) for the chosen keys, a claim costing
        # more the longer the outbox (a 100,000-message backlog). The chosen rows
        # are locked until this statement's transaction ends (PostgreSQL re-reads
        # a row changed meanwhile against the CTE's conditions; SQLite has one
        # writer); the claim is still checked on each row, as defence in depth.
        .where(messages.c.id.in_(select(chosen.c.id)), _FREE)
        .values(claimed_until=bindparam("lease", type_=messages.c.claimed_until.type))
        .returning(
            messages.c.id,
            messages.c.message_id,
            messages.c.sender,
            messages.c.recipient,
            messages.c.message_type,
            # The body's row is read, not written: a claim rewrites only the message's.
            BODY,
            messages.c.attempts,
            messages.c.route,
            messages.c.route_to,
        )
    )


_CLAIM = {of_senders: _claim_statement(of_senders) for of_senders in (False, True)}


@functools.cache
def _still_queued(size: int) -> Select[int]:
    """Which of ``size`` keys (``in_lists``) are in the outbox."""
    # With its body: one erased since it was handed over is not published from memory
    # (its claim lapses, and the claim withdraws it).
    return select(messages.c.id).where(
        in_list(messages.c.id, "pks", size), among(messages.c.status, OUTBOX_STATES), HAS_BODY
    )


@functools.cache
def _receipted_sends(size: int) -> Select[int, str, str]:
    """A receipt's items, by ``size`` ids (``in_lists``), among what ``authority`` sent
    ``route_to``. The sender is named as well (always the authority on an outbound
    row; ``record`` checks): the unique key finds each id, instead of a scan of every
    message the authority sent."""
    return select(messages.c.id, messages.c.message_id, messages.c.digest).where(
        messages.c.direction == Direction.OUTBOUND.value,
        messages.c.authority == bindparam("authority"),
        messages.c.sender == bindparam("authority"),
        messages.c.route_to == bindparam("route_to"),
        in_list(messages.c.message_id, "ids", size),
    )


def _by_outcome(
    receipted: Sequence[tuple[str, str, Status, str | None]],
) -> dict[tuple[Status, str | None], list[tuple[str, str]]]:
    """Receipt items' (message id, digest) by (status, reason), in the items' order."""
    groups: dict[tuple[Status, str | None], list[tuple[str, str]]] = {}
    for message_id, digest, status, reason in receipted:
        groups.setdefault((status, reason), []).append((message_id, digest))
    return groups


def _sends_by_item(size: int) -> tuple[ColumnElement[bool], ...]:
    """Of what :sent_by sent :sent_to, the rows of ``size`` receipt items by their
    (message id, digest): (``:ids_<i>``, ``:digests_<i>``), as ``in_lists`` binds
    them. The ids alone as well, for the plan: SQLite searches the unique key by
    them (a row value IN, or the pairs alone from four on, had it search every
    message the authority sent; tests/unit/test_receiving_query_plans.py)."""
    return (
        messages.c.direction == Direction.OUTBOUND.value,
        messages.c.authority == bindparam("sent_by"),
        messages.c.sender == bindparam("sent_by"),
        messages.c.route_to == bindparam("sent_to"),
        in_list(messages.c.message_id, "ids", size),
        or_(
            *(
                and_(
                    messages.c.message_id
                    == bindparam(f"ids_{i}", type_=messages.c.message_id.type),
                    messages.c.digest == bindparam(f"digests_{i}", type_=messages.c.digest.type),
                )
                for i in range(size)
            )
        ),
    )


class OutboundQueries(LedgerCore):
    """Queries and moves of outbound messages."""

    # --- outbound -----------------------------------------------------------

    def claim_outbox(
        self,
        limit: int,
        senders: Sequence[str] | None,
        now: datetime,
        lease_until: datetime,
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` signed messages waiting to be published, oldest first.

        A claim is a lease (``claimed_until``) taken by a conditional update, so
        two processes on one ledger (a running gateway and ``cafgw send``, or two
        gateway processes) never publish the same row; a claim left by a process
        that died lapses at ``lease_until`` and the row is published again. On
        PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``, so a
        replica claiming at the same moment takes the next rows, not none.
        One statement (``_CLAIM``) chooses, claims and reads the rows.
        """
        params: dict[str, object] = {"now": now, "limit": limit, "lease": lease_until}
        if senders is not None:
            params["senders"] = list(senders)
        rows: list[Any] = []
        want = limit
        while True:
            params["limit"] = want
            try:
                kept, erased = self._claim_round(senders is not None, params)
            except LedgerError:
                if not rows:
                    raise
                # A round after one that withdrew erased rows: what was claimed already
                # goes now, rather than wait for its lease.
                break
            rows += kept
            # A claim short of its limit took all there was; one that withdrew rows
            # takes as many more, so the sender loop never reads a full claim as empty.
            if not erased or len(kept) + erased < want:
                break
            want = erased
        rows.sort(key=lambda r: int(r[0]))  # RETURNING keeps no order
        return [
            OutboxItem(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], Route(r[7]), r[8] or r[3])
            for r in rows
        ]

    def _claim_round(self, of_senders: bool, params: dict[str, object]) -> tuple[list[Any], int]:
        """One claim statement (``_CLAIM``), and the rows it claimed with no body (erased
        here, by retention or an erasure request, after they were queued: a publisher
        held them, and its publish failed, or its claim lapsed, or they came back to be
        sent again) moved to ``WITHDRAWN``: never published empty. The rows with a body,
        and how many were withdrawn."""
        kept: list[Any] = []
        erased: list[int] = []
        with self.transaction() as conn:
            for r in conn.execute(_CLAIM[of_senders], params).all():
                if r[5] is None:
                    erased.append(int(r[0]))
                else:
                    kept.append(r)
            if erased:
                self.transition_from(
                    erased,
                    OUTBOX_STATES,
                    Status.WITHDRAWN,
                    "withdrawn from the outbox: its body was erased here",
                    conn,
                    claimed_until=None,
                    next_attempt_at=None,
                )
        return kept, len(erased)

    def still_queued(self, pks: Sequence[int]) -> set[int]:
        """Which of ``pks`` are still in the outbox: a row handed to the sender loop
        (``gateway.ledger.handoff``) may have been stopped, recalled or erased since.
        One read, no writer's turn."""
        if not pks:
            return set()
        # Not a ``transaction()``: that would wait for the disk to cover every commit
        # this read could see (``wal_sync``), a flush per turn of the sender loop
        # (+3 ms at 200/s in ``bench.hops``). Nothing read here leaves the process: a
        # row seen stopped by a commit not yet durable is only not published now, and
        # if that commit is lost the row is still queued, claimed, and goes out once
        # its claim lapses.
        size = size_of(pks)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_still_queued(size), bind("pks", pks, size)).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger unavailable: {exc}") from exc
        return {int(r[0]) for r in rows}

    def stop_queued(self, pks: Sequence[int], reason: str, conn: Connection) -> list[int]:
        """Move still-queued messages to REJECTED (e.g. consent withdrawn before sending).

        Only rows still in the outbox and not claimed by a publisher at this
        moment: a message that has left (SENT, DELIVERED) keeps the status
        that says so, and one being published right now (another replica's
        live claim) goes out and is recorded SENT, never shown as stopped.
        Rows this very transaction recorded for the sender loop
        (``gateway.ledger.handoff``) are not on their way yet: they stop, and
        the loop will not publish them (it publishes only rows still queued).
        """
        if not pks:
            return []  # the common case of an accepted record: nothing to build or run
        return self.transition_from(
            pks,
            OUTBOX_STATES,
            Status.REJECTED,
            reason,
            conn,
            where=[self.not_being_published(conn)],
            claimed_until=None,
        )

    def send_again(
        self, authority: str, message_ids: Sequence[str], reason: str, conn: Connection
    ) -> list[int]:
        """``authority``'s sent messages ``message_ids`` back to the outbox (``RETRYING``),
        to be published again with the same id and bytes, in ``conn``'s transaction;
        the rows moved. Only rows still ``SENT``: one queued already stays as it is."""
        if not message_ids:
            return []
        pks = conn.execute(
            select(messages.c.id).where(
                messages.c.authority == authority,
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_id.in_(sorted(message_ids)),
            )
        ).scalars()
        return self.transition_from(list(pks), AWAITING_RECEIPT, Status.RETRYING, reason, conn)

    def not_being_published(self, conn: Connection) -> ColumnElement[bool]:
        """The rows no publisher holds at this moment: unclaimed, their claim lapsed,
        or recorded by ``conn``'s own transaction for the sender loop (not on their
        way yet: ``gateway.ledger.handoff``).

        A row a publisher holds may be on the wire now, and is recorded ``SENT``
        once confirmed: whatever would stop it (``stop_queued``, a recall, an
        erasure) must take it as gone, never show it stopped.
        """
        now = self.clock()
        unclaimed = or_(messages.c.claimed_until.is_(None), messages.c.claimed_until <= now)
        ours = handed_in(conn)
        return or_(unclaimed, messages.c.id.in_(ours)) if ours else unclaimed

    def renew_claims(
        self, pks: Sequence[int], held_until: datetime, lease_until: datetime
    ) -> set[int]:
        """Lease again, until ``lease_until``, the rows of ``pks`` still claimed until
        ``held_until`` (the claim this process took) and still in the outbox; which.

        A row missing from the answer was taken by another replica after this
        claim lapsed, or has left the outbox: this process must not publish it.
        """
        if not pks:
            return set()
        with self.transaction() as conn:
            renewed = conn.execute(
                update(messages)
                .where(
                    messages.c.id.in_(list(pks)),
                    messages.c.claimed_until == held_until,
                    messages.c.status.in_([s.value for s in OUTBOX_STATES]),
                )
                .values(claimed_until=lease_until)
                .returning(messages.c.id)
            ).all()
        return {int(r[0]) for r in renewed}

    def release_claims(
        self, claims: Sequence[Claimed], *, wake: bool = False, conn: Connection | None = None
    ) -> None:
        """Give claimed rows back to the outbox at once (their publish failed, or they
        were handed over and not published); in ``conn``'s transaction when given.

        Only the claims this process holds: a row still claimed until the
        ``held_until`` it was claimed (or renewed) until. One whose claim lapsed
        meanwhile and another replica took is that replica's now: cleared, it would
        be published a second time by whoever claims it next, and ``stop_queued``
        would stop a row being published that moment (shown stopped, yet sent).

        ``wake``: and wake the sender loops (here and in replicas) to publish them,
        for rows a sender loop never claimed (``services.delivery.publish_claimed``).
        The sender loop itself gives back without waking: it would wake itself at
        once, again and again while the broker refuses.
        """
        claims = [c for c in claims if c.items]
        if not claims:
            return
        if conn is None:
            with self.transaction() as c:
                self.release_claims(claims, wake=wake, conn=c)
            return
        for claim in claims:
            conn.execute(
                update(messages)
                .where(
                    messages.c.id.in_([i.pk for i in claim.items]),
                    messages.c.claimed_until == claim.held_until,
                )
                .values(claimed_until=None)
            )
        if wake:
            self.announce(conn, OUTBOX)

    def mark_sent(
        self,
        pks: Sequence[int],
        next_attempt_at: datetime | None,
        reason: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Published and confirmed by the broker; now waiting for the receipt. In
        ``conn``'s transaction when given.

        Only rows still in the outbox change: the receipt may already have come
        back (and marked the row DELIVERED) between the broker's confirm and now.
        """
        if not pks:
            return
        self.transition_from(
            pks,
            OUTBOX_STATES,
            Status.SENT,
            reason,
            conn,
            attempts=ONE_MORE_ATTEMPT,
            next_attempt_at=next_attempt_at,
            claimed_until=None,
        )

    def receipt_overdue(self, now: datetime, limit: int) -> list[MessageRecord]:
        """Sent messages whose receipt deadline has passed."""
        query = (
            self._record_select()
            .where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.status == Status.SENT.value,
                messages.c.next_attempt_at.is_not(None),
                messages.c.next_attempt_at <= now,
            )
            .order_by(messages.c.next_attempt_at)
            .limit(limit)
        )
        with self.transaction() as conn:
            return [self._to_record(r) for r in conn.execute(query).all()]

    def mark_delivered(
        self,
        authority: str,
        receipted: Sequence[tuple[str, str, Status, str | None]],
        receipt_from: str,
        conn: Connection | None = None,
    ) -> int:
        """Apply receipt items ``(message_id, digest, status, reason)`` to ``authority``'s sends.

        Only messages sent to ``receipt_from`` (the receipt's verified signer)
        can be settled by its receipt, and only an item whose digest equals
        the digest we sent counts; returns
        how many messages changed. ACKNOWLEDGED and UNDELIVERABLE are final;
        a DELIVERED message may still be reported UNDELIVERABLE later (the
        recipient's local system never acknowledged it), nothing else moves it.
        One conditional update per outcome, however many items (and for more
        than 16 items, or one named twice, one read of their keys first); in
        ``conn``'s transaction when given (the one recording the receipt).
        """
        if not receipted:
            return 0
        if conn is None:
            with self.transaction() as c:
                return self.mark_delivered(authority, receipted, receipt_from, c)
        groups = _by_outcome(receipted)
        in_groups = [pair for items in groups.values() for pair in set(items)]
        # A receipt of a few items (a small batch's): each send found by its (id,
        # digest) in the move itself, no read of the keys first (issue 14). Moves of
        # disjoint rows may run in any order; one item in two groups (a receipt that
        # contradicts itself) is moved group by group in the order of the first
        # items found, as before, so their keys are read first.
        by_item = len(receipted) <= SIZES[-1] and len(in_groups) == len(set(in_groups))
        pks: dict[tuple[str, str], int] = {}
        if not by_item:
            pks = self._receipted_sends(authority, receipted, receipt_from, conn)
            groups = _by_outcome([r for r in receipted if (r[0], r[1]) in pks])
        changed = 0
        for (status, reason), items in groups.items():
            untouchable = {Status.ACKNOWLEDGED, Status.UNDELIVERABLE, status}
            if status != Status.UNDELIVERABLE:
                untouchable.add(Status.DELIVERED)
            expected = [s for s in Status if s not in untouchable]
            if by_item:
                pairs = list(dict.fromkeys(items))
                size = size_of(pairs)
                keys = {
                    "sent_by": authority,
                    "sent_to": receipt_from,
                    **bind("ids", [m for m, _ in pairs], size),
                    **bind("digests", [d for _, d in pairs], size),
                }
                moved = self.move_rows(
                    conn,
                    _sends_by_item,
                    size,
                    keys,
                    expected,
                    status,
                    reason,
                    values={"next_attempt_at": None},
                )
            else:
                moved = self.transition_from(
                    [pks[pair] for pair in items],
                    expected,
                    status,
                    reason,
                    conn,
                    next_attempt_at=None,
                )
            changed += len(moved)
        return changed

    def _receipted_sends(
        self,
        authority: str,
        receipted: Sequence[tuple[str, str, Status, str | None]],
        receipt_from: str,
        conn: Connection,
    ) -> dict[tuple[str, str], int]:
        """Primary keys of ``authority``'s sends to ``receipt_from`` by the (message id,
        digest) of receipt items: one read per 500 ids."""
        ids = list({m for m, _, _, _ in receipted})
        rows: dict[tuple[str, str], int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            size = size_of(chunk)
            for row_id, message_id, digest in conn.execute(
                _receipted_sends(size),
                {"authority": authority, "route_to": receipt_from, **bind("ids", chunk, size)},
            ).all():
                rows[(message_id, digest)] = int(row_id)
        return rows

    def latest_receipted_single_send(
        self, authority: str, recipient: str, route: Route = Route.INBOX, after_pk: int = 0
    ) -> Receipted | None:
        """The newest of ``authority``'s messages to ``recipient`` on ``route`` that was sent
        once and receipted, if its key is above ``after_pk``.

        Its key orders it in the outbox, so every message sent once with a
        lower key went into the recipient's queue before it; so did every copy
        last sent before it was made. ``after_pk``: the lowest key of the messages
        it is asked about; one below it was recorded before all of them (ids are
        handed out in the order rows are recorded, a PostgreSQL sequence without a
        cache included), so it passed none, and the read goes no further back
        (issue 14: the sent history of the authority was read at every pass of a
        backlog). The same answers as without the bound, but where replicas'
        clocks differ by more than a receipt deadline: then an older message whose
        ``created_at`` is after a copy's last send no longer counts as passing it.
        """
        query = (
            select(messages.c.id, messages.c.created_at)
            .where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.authority == authority,
                messages.c.recipient == recipient,
                messages.c.route == route.value,
                messages.c.attempts == 1,
                messages.c.status.in_([s.value for s in RECEIPTED]),
                messages.c.id > after_pk,
            )
            .order_by(messages.c.id.desc())
            .limit(1)
        )
        with self.transaction() as conn:
            found = conn.execute(query).first()
        return Receipted(int(found[0]), as_utc(found[1])) if found else None

    def move_overdue(
        self,
        pks: Sequence[int],
        now: datetime,
        status: Status,
        reason: str,
        conn: Connection,
        where: Sequence[ColumnElement[bool]] = (),
        **values: Any,
    ) -> list[int]:
        """Move messages still awaiting a receipt whose deadline is still past at ``now``
        (and that meet every condition in ``where``).

        Both conditions are in the UPDATE: a receipt that came in since the read
        wins, and so does another replica that already re-sent the message (it
        is SENT again, with a new deadline), so one overdue attempt is re-sent once.
        """
        return self.transition_from(
            pks,
            AWAITING_RECEIPT,
            status,
            reason,
            conn,
            where=[messages.c.next_attempt_at <= now, *where],
            **values,
        )

    def wait_longer_for_receipt(
        self,
        pks: Sequence[int],
        until: datetime,
        reason: str,
        now: datetime | None = None,
        *,
        backlog: bool = False,
    ) -> list[int]:
        """Move the receipt deadline of still-SENT messages to ``until``; no send is counted
        (only of those whose deadline is still past at ``now``, when given). ``backlog``:
        their recipient's inbox held messages (or could not be looked at), so they may
        still have been in it; noted as ``backlog_seen_at`` (``services.backlog``)."""
        if not pks:
            return []
        due = [] if now is None else [messages.c.next_attempt_at <= now]
        stamp = self.clock()
        seen = {"backlog_seen_at": stamp} if backlog else {}
        with self.transaction() as conn:
            return [
                int(r[0])
                for r in conn.execute(
                    update(messages)
                    .where(
                        messages.c.id.in_(list(pks)),
                        messages.c.status == Status.SENT.value,
                        *due,
                    )
                    .values(next_attempt_at=until, reason=reason, updated_at=stamp, **seen)
                    .returning(messages.c.id)
                ).all()
            ]

    def last_sent(self, pks: Sequence[int]) -> dict[int, datetime]:
        """When each message was last sent (its last ``SENT`` in the history)."""
        out: dict[int, datetime] = {}
        for start in range(0, len(pks), 500):
            with self.transaction() as conn:
                out.update(_last_sent(conn, pks[start : start + 500]))
        return out

    def last_in_inbox(self, pks: Sequence[int]) -> dict[int, datetime]:
        """When each sent message could last have been in its recipient's inbox: the
        later of its last send (its last ``SENT`` in the history) and the last look
        that found that inbox holding messages; its creation when neither is known."""
        out: dict[int, datetime] = {}
        for start in range(0, len(pks), 500):
            chunk = list(pks[start : start + 500])
            with self.transaction() as conn:
                rows = conn.execute(
                    select(messages.c.id, messages.c.created_at, messages.c.backlog_seen_at).where(
                        messages.c.id.in_(chunk)
                    )
                ).all()
                sent = _last_sent(conn, chunk)
            for pk, created, seen in rows:
                known = [as_utc(t) for t in (created, sent.get(pk), seen) if t is not None]
                out[int(pk)] = max(known)
        return out


def _last_sent(conn: Connection, pks: Sequence[int]) -> dict[int, datetime]:
    rows = conn.execute(
        select(history.c.message_pk, func.max(history.c.at))
        .where(history.c.message_pk.in_(list(pks)), history.c.status == Status.SENT.value)
        .group_by(history.c.message_pk)
    ).all()
    return {int(pk): as_utc(at) for pk, at in rows}
