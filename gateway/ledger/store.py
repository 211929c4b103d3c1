"""The ledger: every message, its status history, the outbox and the inbox.

SQLite in a file by default, PostgreSQL by URL, through the same SQLAlchemy
Core code. Every write that changes a status also appends to the history,
in the same transaction. SQLAlchemy errors are converted to LedgerError
here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway.errors import LedgerError
from gateway.ledger.records import (
    HistoryEntry,
    InboundSeen,
    InboxItem,
    MessageRecord,
    NewMessage,
    OutboxItem,
    ReceiptDue,
)
from gateway.ledger.status import IN_INBOX, OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import history, messages, metadata

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything in the ledger is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    """An engine with the settings the ledger relies on (WAL and a busy timeout on SQLite)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # FULL: a committed transaction survives a power cut, not just a crash.
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (SQLAlchemyError, ImportError) as exc:
        raise LedgerError(f"cannot open the ledger at {url}: {exc}") from exc


class Ledger:
    """Message records and their history."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, url: str, clock: Clock = utc_now) -> Ledger:
        ledger = cls(make_engine(url), clock)
        ledger.create_schema()
        return ledger

    def create_schema(self) -> None:
        from gateway import features  # noqa: PLC0415 - features add their tables to the metadata

        features.load()
        with self.transaction() as conn:
            metadata.create_all(conn)

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute(select(1))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise LedgerError(f"ledger constraint violated: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger unavailable: {exc}") from exc

    # --- writing ------------------------------------------------------------

    def record(self, items: Sequence[NewMessage], conn: Connection | None = None) -> list[int]:
        """Insert messages with their initial status history; returns primary keys (in order).

        One multi-row INSERT ... RETURNING for the messages and one for their
        history, however many messages: a batch costs two statements, not 2n.
        """
        if conn is None:
            with self.transaction() as c:
                return self.record(items, c)
        if not items:
            return []
        now = self.clock()
        rows = []
        for item in items:
            if not item.statuses:
                raise LedgerError(f"message {item.message_id}: recorded without a status")
            last_status, last_reason = item.statuses[-1]
            rows.append(
                {
                    "message_id": item.message_id[:64],
                    "direction": item.direction.value,
                    "authority": item.authority,
                    "sender": item.sender[:16],
                    "recipient": item.recipient[:16],
                    "message_type": item.message_type[:32],
                    "correlation_id": item.correlation_id[:64],
                    "case_ref": item.case_ref,
                    "legal_basis": item.legal_basis[:32],
                    "purpose": item.purpose,
                    "status": last_status.value,
                    "reason": last_reason,
                    "digest": item.digest,
                    "body": item.body,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "receipt_due": item.receipt_due,
                    "child_key": item.child_key,
                    "restricted": False,
                }
            )
        result = conn.execute(
            insert(messages).returning(messages.c.id, sort_by_parameter_order=True), rows
        )
        pks = [int(r[0]) for r in result.all()]
        if len(pks) != len(items):
            raise LedgerError(f"recorded {len(items)} messages but got {len(pks)} primary keys")
        conn.execute(
            insert(history),
            [
                {"message_pk": pk, "status": st.value, "at": now, "reason": reason}
                for pk, item in zip(pks, items, strict=True)
                for st, reason in item.statuses
            ],
        )
        return pks

    def transition(
        self,
        pks: Iterable[int],
        status: Status,
        reason: str | None = None,
        conn: Connection | None = None,
        **values: Any,
    ) -> None:
        """Move messages to ``status`` (and set other columns), appending history."""
        pk_list = list(pks)
        if not pk_list:
            return
        if conn is None:
            with self.transaction() as c:
                self.transition(pk_list, status, reason, c, **values)
                return
        now = self.clock()
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(pk_list))
            .values(status=status.value, reason=reason, updated_at=now, **values)
        )
        conn.execute(
            insert(history),
            [
                {"message_pk": pk, "status": status.value, "at": now, "reason": reason}
                for pk in pk_list
            ],
        )

    def transition_from(
        self,
        pks: Iterable[int],
        expected: Iterable[Status],
        status: Status,
        reason: str | None = None,
        conn: Connection | None = None,
        **values: Any,
    ) -> list[int]:
        """Like ``transition``, but only for rows whose status is still one of ``expected``.

        The condition is part of the UPDATE, so a concurrent writer (a receipt
        marking a row DELIVERED while the sender marks it SENT) cannot be
        overwritten by a decision taken on a stale read. Returns the rows moved.
        """
        pk_list = list(pks)
        if not pk_list:
            return []
        if conn is None:
            with self.transaction() as c:
                return self.transition_from(pk_list, expected, status, reason, c, **values)
        now = self.clock()
        moved = [
            int(r[0])
            for r in conn.execute(
                update(messages)
                .where(
                    messages.c.id.in_(pk_list),
                    messages.c.status.in_([s.value for s in expected]),
                )
                .values(status=status.value, reason=reason, updated_at=now, **values)
                .returning(messages.c.id)
            ).all()
        ]
        if moved:
            conn.execute(
                insert(history),
                [
                    {"message_pk": pk, "status": status.value, "at": now, "reason": reason}
                    for pk in moved
                ],
            )
        return moved

    def note(
        self, pk: int, status: Status, reason: str | None, conn: Connection | None = None
    ) -> None:
        """Append a history entry without changing the current status (e.g. DUPLICATE)."""
        if conn is None:
            with self.transaction() as c:
                self.note(pk, status, reason, c)
                return
        conn.execute(
            insert(history).values(
                message_pk=pk, status=status.value, at=self.clock(), reason=reason
            )
        )

    def set_receipt_due(self, pks: Sequence[int], conn: Connection) -> None:
        if pks:
            conn.execute(
                update(messages).where(messages.c.id.in_(list(pks))).values(receipt_due=True)
            )

    # --- outbound -----------------------------------------------------------

    def outbox(self, limit: int, senders: Sequence[str] | None = None) -> list[OutboxItem]:
        """Signed outbound messages waiting to be published, oldest first."""
        query = (
            select(
                messages.c.id,
                messages.c.message_id,
                messages.c.sender,
                messages.c.recipient,
                messages.c.message_type,
                messages.c.body,
                messages.c.attempts,
            )
            .where(
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.status.in_([s.value for s in OUTBOX_STATES]),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        if senders is not None:
            query = query.where(messages.c.authority.in_(list(senders)))
        with self.transaction() as conn:
            rows = conn.execute(query).all()
        return [OutboxItem(r[0], r[1], r[2], r[3], r[4], bytes(r[5] or b""), r[6]) for r in rows]

    def mark_sent(
        self, pks: Sequence[int], next_attempt_at: datetime | None, reason: str | None = None
    ) -> None:
        """Published and confirmed by the broker; now waiting for the receipt.

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
            attempts=messages.c.attempts + 1,
            next_attempt_at=next_attempt_at,
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
        self, authority: str, receipted: Sequence[tuple[str, str, Status, str | None]]
    ) -> int:
        """Apply receipt items ``(message_id, digest, status, reason)`` to ``authority``'s sends.

        Only an item whose digest equals the digest we sent counts; returns
        how many messages changed. ACKNOWLEDGED and UNDELIVERABLE are final;
        a DELIVERED message may still be reported UNDELIVERABLE later (the
        recipient's local system never acknowledged it), nothing else moves it.
        One read and one conditional update per outcome, however many items.
        """
        if not receipted:
            return 0
        final = {Status.ACKNOWLEDGED, Status.UNDELIVERABLE}
        changed = 0
        with self.transaction() as conn:
            ids = list({m for m, _, _, _ in receipted})
            rows: dict[tuple[str, str], int] = {}
            for start in range(0, len(ids), 500):
                for pk, message_id, digest in conn.execute(
                    select(messages.c.id, messages.c.message_id, messages.c.digest).where(
                        messages.c.direction == Direction.OUTBOUND.value,
                        messages.c.authority == authority,
                        messages.c.message_id.in_(ids[start : start + 500]),
                    )
                ).all():
                    rows[(message_id, digest)] = int(pk)
            groups: dict[tuple[Status, str | None], list[int]] = {}
            for message_id, digest, status, reason in receipted:
                pk = rows.get((message_id, digest))
                if pk is not None:
                    groups.setdefault((status, reason), []).append(pk)
            for (status, reason), pks in groups.items():
                untouchable = final | {status}
                if status != Status.UNDELIVERABLE:
                    untouchable.add(Status.DELIVERED)
                expected = [s for s in Status if s not in untouchable]
                changed += len(
                    self.transition_from(pks, expected, status, reason, conn, next_attempt_at=None)
                )
        return changed

    # --- inbound ------------------------------------------------------------

    def inbound_rows(
        self, authority: str, keys: Sequence[tuple[str, str, str | None]], conn: Connection
    ) -> dict[tuple[str, str, str | None], int]:
        """Primary keys of inbound rows (any status) by ``(sender, message_id, digest)``."""
        if not keys:
            return {}
        wanted = set(keys)
        rows = conn.execute(
            select(
                messages.c.sender, messages.c.message_id, messages.c.digest, messages.c.id
            ).where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == authority,
                messages.c.message_id.in_(list({m for _, m, _ in keys})),
            )
        ).all()
        return {(s, m, d): pk for s, m, d, pk in rows if (s, m, d) in wanted}

    def seen_inbound(
        self, authority: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], InboundSeen]:
        """What is already recorded for these ``(sender, message_id)`` pairs (not quarantined)."""
        found: dict[tuple[str, str], InboundSeen] = {}
        if not keys:
            return found
        ids = list({m for _, m in keys})
        with self.transaction() as conn:
            rows = conn.execute(
                select(
                    messages.c.sender,
                    messages.c.message_id,
                    messages.c.id,
                    messages.c.digest,
                    messages.c.status,
                    messages.c.receipt_message_id,
                ).where(
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.authority == authority,
                    messages.c.message_id.in_(ids),
                    messages.c.status != Status.QUARANTINED.value,
                )
            ).all()
        wanted = set(keys)
        for sender, message_id, pk, digest, status, receipt_id in rows:
            if (sender, message_id) in wanted:
                found[(sender, message_id)] = InboundSeen(pk, digest, Status(status), receipt_id)
        return found

    def inbox(
        self, authority: str, limit: int = 100, include_restricted: bool = False
    ) -> list[InboxItem]:
        """Messages received for ``authority`` that its local system has not acknowledged."""
        query = (
            select(
                messages.c.id,
                messages.c.message_id,
                messages.c.sender,
                messages.c.recipient,
                messages.c.message_type,
                messages.c.correlation_id,
                messages.c.status,
                messages.c.created_at,
                messages.c.body,
                messages.c.restricted,
            )
            .where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == authority,
                messages.c.status.in_([s.value for s in IN_INBOX]),
                messages.c.message_type != "Receipt",
            )
            .order_by(messages.c.id)
            .limit(limit)
        )
        if not include_restricted:
            query = query.where(messages.c.restricted.is_(False))
        with self.transaction() as conn:
            rows = conn.execute(query).all()
        return [
            InboxItem(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                Status(r[6]),
                _aware(r[7]),
                bytes(r[8] or b""),
                bool(r[9]),
            )
            for r in rows
        ]

    def acknowledge_local(self, authority: str, message_id: str) -> bool:
        """The local system took the message; False if it is not in the inbox."""
        with self.transaction() as conn:
            row = conn.execute(
                select(messages.c.id).where(
                    messages.c.direction == Direction.INBOUND.value,
                    messages.c.authority == authority,
                    messages.c.message_id == message_id,
                    messages.c.status.in_([s.value for s in IN_INBOX]),
                )
            ).first()
            if row is None:
                return False
            self.transition([row[0]], Status.ACKNOWLEDGED, "local system acknowledged", conn)
            return True

    def receipts_due(self, limit: int) -> list[ReceiptDue]:
        with self.transaction() as conn:
            rows = conn.execute(
                select(
                    messages.c.id,
                    messages.c.authority,
                    messages.c.sender,
                    messages.c.message_id,
                    messages.c.digest,
                    messages.c.status,
                    messages.c.reason,
                )
                .where(messages.c.receipt_due.is_(True))
                .order_by(messages.c.id)
                .limit(limit)
            ).all()
        return [ReceiptDue(r[0], r[1], r[2], r[3], r[4] or "", Status(r[5]), r[6]) for r in rows]

    def mark_receipted(self, pks: Sequence[int], receipt_message_id: str, conn: Connection) -> None:
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(list(pks)))
            .values(receipt_due=False, receipt_message_id=receipt_message_id)
        )

    def body_of(self, authority: str, direction: Direction, message_id: str) -> bytes | None:
        with self.transaction() as conn:
            row = conn.execute(
                select(messages.c.body).where(
                    messages.c.authority == authority,
                    messages.c.direction == direction.value,
                    messages.c.message_id == message_id,
                )
            ).first()
        return None if row is None or row[0] is None else bytes(row[0])

    # --- reading ------------------------------------------------------------

    def find(
        self,
        message_id: str | None = None,
        authority: str | None = None,
        status: Status | None = None,
        direction: Direction | None = None,
        correlation_id: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
        with_history: bool = True,
    ) -> list[MessageRecord]:
        """Messages matching every given filter, newest first."""
        conditions = []
        if message_id is not None:
            conditions.append(messages.c.message_id == message_id)
        if authority is not None:
            conditions.append(messages.c.authority == authority)
        if status is not None:
            conditions.append(messages.c.status == status.value)
        if direction is not None:
            conditions.append(messages.c.direction == direction.value)
        if correlation_id is not None:
            conditions.append(messages.c.correlation_id == correlation_id)
        if since is not None:
            conditions.append(messages.c.updated_at >= since)
        query = (
            self._record_select()
            .where(and_(*conditions))
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        with self.transaction() as conn:
            records = [self._to_record(r) for r in conn.execute(query).all()]
            if not with_history or not records:
                return records
            by_pk: dict[int, list[HistoryEntry]] = {r.pk: [] for r in records}
            for pk, st, at, reason in conn.execute(
                select(history.c.message_pk, history.c.status, history.c.at, history.c.reason)
                .where(history.c.message_pk.in_(list(by_pk)))
                .order_by(history.c.id)
            ).all():
                by_pk[pk].append(HistoryEntry(Status(st), _aware(at), reason))
        return [_with_history(r, tuple(by_pk[r.pk])) for r in records]

    def counts(self, since: datetime | None = None) -> dict[tuple[str, str, str], int]:
        """Message counts by (authority, direction, status)."""
        query = select(
            messages.c.authority, messages.c.direction, messages.c.status, func.count()
        ).group_by(messages.c.authority, messages.c.direction, messages.c.status)
        if since is not None:
            query = query.where(messages.c.updated_at >= since)
        with self.transaction() as conn:
            return {(a, d, s): int(n) for a, d, s, n in conn.execute(query).all()}

    def recipients_of_child(self, authority: str, child_key: str) -> set[str]:
        """Authorities that ``authority`` has already sent data about this child to."""
        with self.transaction() as conn:
            rows = conn.execute(
                select(messages.c.recipient)
                .where(
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.authority == authority,
                    messages.c.child_key == child_key,
                    or_(
                        messages.c.status == Status.SENT.value,
                        messages.c.status == Status.DELIVERED.value,
                        messages.c.status == Status.ACKNOWLEDGED.value,
                        messages.c.status == Status.RETRYING.value,
                    ),
                )
                .distinct()
            ).all()
        return {r[0] for r in rows}

    @staticmethod
    def _record_select() -> Any:
        return select(
            messages.c.id,
            messages.c.message_id,
            messages.c.direction,
            messages.c.authority,
            messages.c.sender,
            messages.c.recipient,
            messages.c.message_type,
            messages.c.correlation_id,
            messages.c.case_ref,
            messages.c.legal_basis,
            messages.c.purpose,
            messages.c.status,
            messages.c.reason,
            messages.c.digest,
            messages.c.attempts,
            messages.c.created_at,
            messages.c.updated_at,
            messages.c.next_attempt_at,
            messages.c.restricted,
        )

    @staticmethod
    def _to_record(r: Any) -> MessageRecord:
        return MessageRecord(
            pk=r[0],
            message_id=r[1],
            direction=Direction(r[2]),
            authority=r[3],
            sender=r[4],
            recipient=r[5],
            message_type=r[6],
            correlation_id=r[7],
            case_ref=r[8],
            legal_basis=r[9],
            purpose=r[10],
            status=Status(r[11]),
            reason=r[12],
            digest=r[13],
            attempts=int(r[14] or 0),
            created_at=_aware(r[15]),
            updated_at=_aware(r[16]),
            next_attempt_at=_aware(r[17]) if r[17] else None,
            restricted=bool(r[18]),
        )


def _with_history(record: MessageRecord, entries: tuple[HistoryEntry, ...]) -> MessageRecord:

    return replace(record, history=entries)
