"""The ledger's core: engine, transactions, recording messages and moving their status.

SQLite in a file by default, PostgreSQL by URL, through the same SQLAlchemy
Core code. Every write that changes a status also appends to the history,
in the same transaction. SQLAlchemy errors are converted to LedgerError
here, once.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from weakref import WeakKeyDictionary, WeakSet

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Update,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from gateway.errors import LedgerError, LedgerUnavailableError
from gateway.ledger import migrate
from gateway.ledger.handoff import Claimed, Handoff
from gateway.ledger.in_lists import among, bind, in_list, size_of
from gateway.ledger.notify import AWAITING_HANDOVER, announce, topics_for
from gateway.ledger.records import (
    CODE_WIDTH,
    MESSAGE_ID_WIDTH,
    MESSAGE_TYPE_WIDTH,
    HistoryEntry,
    MessageRecord,
    NewMessage,
    outbox_item,
)
from gateway.ledger.sqlite_writer import commits_begun, serialize_writers, wait_durable
from gateway.ledger.status import OUTBOX_STATES, Direction, Route, Status
from gateway.ledger.tables import history, message_bodies, messages
from gateway.private_files import create_private_file, make_private_dir, tighten
from gateway.wakeups import HANDOVER, OUTBOX, RECEIPTS

Clock = Callable[[], datetime]

# Work to do at the end of a transaction, just before its commit (see
# ``before_commit``), by connection; weak, so nothing outlives its connection.
_BEFORE_COMMIT: WeakKeyDictionary[Connection, list[Callable[[Connection], None]]] = (
    WeakKeyDictionary()
)
# Connections inside a ``LedgerCore.transaction()`` (which runs the above).
_MANAGED: WeakSet[Connection] = WeakSet()
# Outbox rows a transaction recorded claimed for this process's sender loop, handed
# to it once the transaction is durable (``LedgerCore.record``, ``gateway.ledger.handoff``).
_HANDED: WeakKeyDictionary[Connection, list[tuple[Handoff, Claimed]]] = WeakKeyDictionary()

# Statements the hot paths run many times a second are built once: SQLAlchemy
# computes a new statement's cache key on every execution, which for an UPDATE
# with IN lists costs more CPU than SQLite's work (issue 14, docs/performance.md).
_HISTORY = insert(history)
_BODIES = insert(message_bodies)

ONE_MORE_ATTEMPT = messages.c.attempts + 1
"""``attempts=ONE_MORE_ATTEMPT`` in a move counts one more send."""

RowsOf = Callable[[int], tuple[ColumnElement[bool], ...]]
"""How a move finds its rows: the conditions for a list of ``size`` keys, bound as
``gateway.ledger.in_lists`` binds them (``by_pk``, or a caller's own, such as the
sends a receipt names)."""


def by_pk(size: int) -> tuple[ColumnElement[bool], ...]:
    """Rows by primary key: ``id IN (:pks_0, ...)``."""
    return (in_list(messages.c.id, "pks", size),)


# Conditional moves by shape: (how rows are found, statuses expected, columns set,
# size of the key list). Bounded by the code's calls, not by data: the values are
# bound, only ONE_MORE_ATTEMPT and the statuses are written into the statement.
_MOVES: dict[tuple[RowsOf, tuple[str, ...], tuple[tuple[str, bool], ...], int], Update] = {}


def _build_move(
    rows: RowsOf, expected: tuple[str, ...], columns: tuple[tuple[str, bool], ...], size: int
) -> Update:
    """``UPDATE messages ... WHERE <rows(size)> AND status IN expected RETURNING id``
    (the statuses written into the statement); each column ``(name, True)`` counts
    one more attempt, ``(name, False)`` is bound as ``:v_<name>``."""
    values: dict[str, Any] = {
        name: ONE_MORE_ATTEMPT if counted else bindparam(f"v_{name}", type_=messages.c[name].type)
        for name, counted in columns
    }
    return (
        update(messages)
        .where(*rows(size), among(messages.c.status, expected))
        .values(**values)
        .returning(messages.c.id)
    )


def _move_statement(
    rows: RowsOf, expected: tuple[str, ...], columns: tuple[tuple[str, bool], ...], size: int
) -> Update:
    """``_build_move``, built once per shape."""
    shape = (rows, expected, columns, size)
    statement = _MOVES.get(shape)
    if statement is None:
        statement = _MOVES[shape] = _build_move(*shape)
    return statement


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware datetime in UTC: a naive one (SQLite hands those back) is
    taken as UTC, an aware one (a signed created-at with its offset) converted, so that
    SQLite, which compares the times it keeps as text, orders it among the others."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# SQLite's page cache per pooled connection, KiB (SQLite's default: 2,000). A
# gateway's threads hold up to 15 pooled connections (SQLAlchemy's default pool),
# each filling its own cache as the ledger grows; pages not cached come from the
# OS's file cache. 512 KiB: 3-7 MB less peak RSS per gateway process over 10,000
# messages, throughput unchanged (docs/performance.md, 2026-12-04).
SQLITE_CACHE_KIB = 512

# Prepared statements the sqlite3 module keeps per connection (its default: 128).
# Each is SQLite's compiled program, held in native memory, and each distinct SQL
# text gets its own (an ``IN`` list of another length is another text): with the
# default, SQLite held 20-29 MB in the whole path's receiver and 15-23 MB in its
# sender; with 16, 3-5 MB (docs/performance.md, 2026-12-05). But 16 is fewer than
# one small received batch and its receipt use (about 25 texts): each was prepared
# again every batch (a receipt's 11 statements took 0.67 ms in SQLite, 0.29 with
# 32), and a batch of 3 cost the receiver 2.5 ms of CPU a message, 2.2 with 32;
# the whole path's processes stayed under 147 MB (docs/performance.md, 2026-12-06).
SQLITE_CACHED_STATEMENTS = 32


def make_engine(url: str, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    """An engine with the settings the ledger relies on (WAL, a busy timeout and writers
    taking turns within the process on SQLite;
    on PostgreSQL a pool of ``pool_size`` connections, ``max_overflow`` more at peaks)."""
    if url.startswith("sqlite") and ("uri=" in url or url.startswith("sqlite:///file:")):
        # Its file would be made as a path named "file:..." (private_sqlite_file), and
        # group commit flushes the log by the file's name, which a URI does not give.
        raise LedgerError(
            f"the ledger {url} is an SQLite URI: name its file by its path instead "
            "(sqlite:///path/to/ledger.db)"
        )
    if url.startswith("sqlite:///") and ":memory:" not in url:
        private_sqlite_file(Path(url[len("sqlite:///") :]))
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url,
                connect_args={
                    "timeout": 30,
                    "check_same_thread": False,
                    "cached_statements": SQLITE_CACHED_STATEMENTS,
                },
            )
            grouped = ":memory:" not in url and bool(engine.url.database)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                # A committed transaction survives a power cut, not just a crash:
                # FULL flushes the log inside each COMMIT; on a file, commits are
                # flushed together instead (NORMAL, then ``wait_durable`` before
                # ``transaction()`` returns: ``sqlite_writer``, ``wal_sync``).
                cur.execute(f"PRAGMA synchronous={'NORMAL' if grouped else 'FULL'}")
                cur.execute("PRAGMA foreign_keys=ON")
                # Erased personal data must not linger in freed pages (retention, erasure).
                cur.execute("PRAGMA secure_delete=ON")
                cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
                cur.close()

            if grouped:
                serialize_writers(engine)  # no busy-handler sleeps between the process's writers
            return engine
        return create_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow
        )
    except (SQLAlchemyError, ImportError) as exc:
        raise LedgerError(f"cannot open the ledger at {url}: {exc}") from exc


def _outage(engine: Engine, exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database server does not answer (PostgreSQL down,
    restarting or the connection cut), rather than anything about the work."""
    if engine.dialect.name == "sqlite":
        return False  # a file: "locked" or "unable to open" is not a server restarting
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    # No SQLSTATE: the client could not connect. Class 08: the connection failed;
    # 57P01-57P03: the server is shutting down, crashed or is starting up. Others of
    # OperationalError (a deadlock, a cancelled statement) are about the work itself.
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or str(state).startswith(("08", "57P"))


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite ledger owner-only (0600 in a new 0700 directory).

    It holds children's records. SQLite gives its ``-wal`` and ``-shm`` files
    the mode of the database file, so creating that one 0600 before SQLite
    does covers all three; files left by an older version are tightened.
    """
    make_private_dir(path.parent)
    create_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


class LedgerCore:
    """Message records and their history: what every ledger query builds on."""

    def __init__(
        self, engine: Engine, clock: Clock = utc_now, audit_key: bytes | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock
        # HMAC key of the audit chain (gateway.ledger.audit_key); None: plain SHA-256.
        self.audit_key = audit_key
        # Who this process is among replicas sharing the ledger (job leases name it).
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]
        # This process's sender loop, while one runs (``Worker.start``): messages
        # recorded for sending are handed to it claimed (``record``).
        self.handoff: Handoff | None = None

    @classmethod
    def open(
        cls,
        url: str,
        clock: Clock = utc_now,
        audit_key: bytes | None = None,
        schemas: Sequence[MetaData] = (),
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
    ) -> Self:
        """The ledger at ``url``, its schema brought to the newest revision; ``schemas``
        are tables it must then have (the running features')."""
        ledger = cls(make_engine(url, pool_size, max_overflow), clock, audit_key)
        ledger.upgrade_schema(schemas)
        return ledger

    def upgrade_schema(self, schemas: Sequence[MetaData] = ()) -> migrate.Upgrade:
        """Bring the ledger's schema to the newest revision, and check that it has the
        tables of ``schemas`` (what the features running here declare).

        The revisions create one schema for every gateway, all the standard
        features' tables included (``gateway.ledger.migrate``). On PostgreSQL
        under the schema's advisory lock, in one transaction: replicas starting
        together on a fresh or older ledger upgrade it one after the other
        (the later ones find it done), instead of racing on ``CREATE TABLE``.
        """
        with self.transaction() as conn:
            done = migrate.upgrade(conn)
            missing = migrate.missing_tables(conn, schemas)
        if missing:
            raise LedgerError(
                f"the ledger has no table {', '.join(missing)} though a feature declares it: "
                "no migration creates it (a new table needs a revision: docs/architecture.md, "
                "Changing the schema)"
            )
        return done

    def schema_revision(self) -> str | None:
        """The schema revision the ledger is at (None: not migrated yet); changes nothing."""
        with self.transaction() as conn:
            return migrate.current(conn)

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute(select(1))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        handed: list[tuple[Handoff, Claimed]] = []
        read_upto: int | None = None  # the commits a block ended by an error could have read
        try:
            try:
                try:
                    with self.engine.begin() as conn:
                        _MANAGED.add(conn)
                        try:
                            yield conn
                            # Until none is left: an action may leave work for another.
                            while actions := _BEFORE_COMMIT.pop(conn, None):
                                for action in actions:
                                    action(conn)
                        except BaseException:
                            read_upto = commits_begun(self.engine)
                            raise
                        finally:
                            _MANAGED.discard(conn)
                            _BEFORE_COMMIT.pop(conn, None)
                            handed = _HANDED.pop(conn, [])
                except BaseException:
                    # The error may tell what the block read (a 409 naming who decided
                    # first): another thread's commit it read leaves the process only
                    # once on disk, as after a block that ends normally (``wal_sync``).
                    wait_durable(self.engine, read_upto)
                    raise
                # Back in the pool (the writer's turn is free): now wait for the disk.
                wait_durable(self.engine)
            except IntegrityError as exc:
                raise LedgerError(f"ledger constraint violated: {exc.orig}") from exc
            except SQLAlchemyError as exc:
                if _outage(self.engine, exc):
                    raise LedgerUnavailableError(f"ledger unavailable: {exc}") from exc
                raise LedgerError(f"ledger unavailable: {exc}") from exc
        except BaseException:
            # Rolled back, or its commit's fate unknown: nothing is handed over (a row
            # that was committed after all stays claimed until its lease lapses).
            for handoff, claimed in handed:
                handoff.cancel(len(claimed.items))
            raise
        # Durable: only now may the sender loop publish what it recorded.
        for handoff, claimed in handed:
            handoff.put(claimed)

    @staticmethod
    def before_commit(conn: Connection, action: Callable[[Connection], None]) -> bool:
        """Run ``action`` on ``conn`` as the last thing of its ``transaction()``; False
        (nothing registered) when ``conn`` is not one of those.

        Once per transaction for the same ``action`` (the audit chain's
        appends go in at the end, holding its lock only until the commit).
        A transaction that is rolled back runs none.
        """
        if conn not in _MANAGED:
            return False
        pending = _BEFORE_COMMIT.setdefault(conn, [])
        if action not in pending:
            pending.append(action)
        return True

    # --- writing ------------------------------------------------------------

    def record(
        self,
        items: Sequence[NewMessage],
        conn: Connection | None = None,
        *,
        claimed_until: datetime | None = None,
    ) -> list[int]:
        """Insert messages with their initial status history; returns primary keys (in order).

        One multi-row INSERT ... RETURNING for the messages, one for their
        bodies and one for their history, however many messages: a batch costs
        three statements, not 3n.

        ``claimed_until``: outbound messages this process publishes itself once
        the transaction commits (``services.delivery.publish_claimed``) are
        recorded already claimed until then, as ``claim_outbox`` would leave
        them, and wake no sender loop; a claim this process never settles
        lapses, and the row is published by whoever claims it next.

        Without it, while this process runs a sender loop (``handoff``), the
        messages this records for sending are recorded claimed the same way and
        handed to that loop once ``conn``'s ``transaction()`` is durable
        (``gateway.ledger.handoff``), unless it has no room for them or ``conn``
        is in a savepoint (which could be rolled back alone).
        """
        if conn is None:
            with self.transaction() as c:
                return self.record(items, c, claimed_until=claimed_until)
        if not items:
            return []
        now = self.clock()
        rows = []
        for item in items:
            if not item.statuses:
                raise LedgerError(f"message {item.message_id}: recorded without a status")
            if item.direction is Direction.OUTBOUND and item.sender != item.authority:
                # Receipts find their messages by (authority, sender, id): the unique key.
                raise LedgerError(
                    f"outbound message {item.message_id}: sender {item.sender} is not "
                    f"the authority {item.authority} that sends it"
                )
            last_status, last_reason = item.statuses[-1]
            rows.append(
                {
                    "message_id": item.message_id[:MESSAGE_ID_WIDTH],
                    "direction": item.direction.value,
                    "authority": item.authority,
                    "sender": item.sender[:CODE_WIDTH],
                    "recipient": item.recipient[:CODE_WIDTH],
                    "message_type": item.message_type[:MESSAGE_TYPE_WIDTH],
                    "correlation_id": item.correlation_id[:64],
                    "case_ref": item.case_ref,
                    "legal_basis": item.legal_basis[:32],
                    "purpose": item.purpose,
                    "status": last_status.value,
                    "reason": last_reason,
                    "digest": item.digest,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "receipt_due": item.receipt_due,
                    "child_key": item.child_key,
                    "restricted": item.restricted,
                    "route": item.route.value,
                    "route_to": item.route_to,
                    "content_digest": item.content_digest,
                    "claimed_until": claimed_until,
                }
            )
        handoff = self.handoff
        # Indexes of ``items`` recorded claimed for this process's sender loop.
        handing = _handed_over(items, conn, handoff) if claimed_until is None else []
        hand_until = now + handoff.lease if handoff is not None and handing else now
        for i in handing:
            rows[i]["claimed_until"] = hand_until
        try:
            pks = _insert_messages(conn, rows)
            if len(pks) != len(items):
                raise LedgerError(f"recorded {len(items)} messages but got {len(pks)} primary keys")
            bodies = [
                {"message_pk": pk, "body": item.body}
                for pk, item in zip(pks, items, strict=True)
                if item.body is not None
            ]
            if bodies:
                conn.execute(_BODIES, bodies)
            conn.execute(
                _HISTORY,
                [
                    {"message_pk": pk, "status": st.value, "at": now, "reason": reason}
                    for pk, item in zip(pks, items, strict=True)
                    for st, reason in item.statuses
                ],
            )
        except BaseException:
            if handoff is not None and handing:
                handoff.cancel(len(handing))  # reserved by ``_handed_over``
            raise
        work = _work_of(items)
        if handoff is not None and handing:
            # Every message of ``items`` for the outbox is handed over once durable
            # (``transaction``, which cancels the reservation if it is not).
            claimed = Claimed(tuple(outbox_item(pks[i], items[i]) for i in handing), hand_until)
            _HANDED.setdefault(conn, []).append((handoff, claimed))
        if claimed_until is not None or handing:
            work = [topic for topic in work if topic != OUTBOX]
        self.announce(conn, *work)
        return pks

    def announce(self, conn: Connection, *topics: str) -> None:
        """Wake the loops of ``topics`` (here and in replicas) once ``conn`` commits."""
        announce(conn, self.replica, *topics)

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
            _HISTORY,
            [
                {"message_pk": pk, "status": status.value, "at": now, "reason": reason}
                for pk in pk_list
            ],
        )
        self.announce(conn, *topics_for([status]))

    def transition_from(
        self,
        pks: Iterable[int],
        expected: Iterable[Status],
        status: Status,
        reason: str | None = None,
        conn: Connection | None = None,
        *,
        where: Sequence[ColumnElement[bool]] = (),
        **values: Any,
    ) -> list[int]:
        """Like ``transition``, but only for rows whose status is still one of ``expected``
        (and that meet every condition in ``where``).

        The condition is part of the UPDATE, so a concurrent writer (a receipt
        marking a row DELIVERED while the sender marks it SENT, or another
        replica taking the same decision) cannot be overwritten by a decision
        taken on a stale read. Returns the rows moved.
        """
        pk_list = list(pks)
        statuses = tuple(expected)
        if not pk_list or not statuses:
            return []  # no row can move (an empty IN matches none)
        if conn is None:
            with self.transaction() as c:
                return self.transition_from(
                    pk_list, statuses, status, reason, c, where=where, **values
                )
        size = size_of(pk_list)
        return self.move_rows(
            conn, by_pk, size, bind("pks", pk_list, size), statuses, status, reason, where, values
        )

    def move_rows(
        self,
        conn: Connection,
        rows: RowsOf,
        size: int,
        keys: dict[str, Any],
        expected: Sequence[Status],
        status: Status,
        reason: str | None,
        where: Sequence[ColumnElement[bool]] = (),
        values: dict[str, Any] | None = None,
    ) -> list[int]:
        """``transition_from`` for the rows ``rows(size)`` finds with ``keys`` bound (at
        least one expected status): found and moved in one statement, with no read of
        their primary keys first. Returns the rows moved.

        ``rows`` must be a module-level function: the statement is built once per
        (``rows``, statuses, columns, size) and kept, so a lambda or a closure made
        per call would build and keep a new one every time."""
        if "<" in rows.__qualname__:
            raise TypeError(
                f"move_rows: rows={rows.__qualname__} is a lambda or a closure; pass a "
                "module-level function (its statements are kept by it)"
            )
        now = self.clock()
        values = {"status": status.value, "reason": reason, "updated_at": now, **(values or {})}
        for name, value in values.items():
            if isinstance(value, ColumnElement) and value is not ONE_MORE_ATTEMPT:
                raise TypeError(
                    f"move of messages.{name}: a SQL expression other than ONE_MORE_ATTEMPT"
                )
        columns = tuple(sorted((name, value is ONE_MORE_ATTEMPT) for name, value in values.items()))
        shape = (rows, tuple(sorted(s.value for s in expected)), columns, size)
        # A condition of the caller's own (its values in it) is built for this call.
        statement = _build_move(*shape).where(*where) if where else _move_statement(*shape)
        params = {f"v_{name}": values[name] for name, counted in columns if not counted}
        params.update(keys)
        found = conn.execute(statement, params).all()
        moved = [int(r[0]) for r in found]
        if moved:
            conn.execute(
                _HISTORY,
                [
                    {"message_pk": pk, "status": status.value, "at": now, "reason": reason}
                    for pk in moved
                ],
            )
            self.announce(conn, *topics_for([status]))
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

    def forget_handover_claims(self) -> int:
        """Clear every handover claim (on inbound rows); how many there were.

        Only for a process that knows no other gateway runs on the ledger
        (SQLite's gateway lock): a predecessor killed mid-handover left them,
        and nobody need wait for them to lapse. Publish claims (outbound rows)
        stay: ``cafgw send`` may hold some at this moment.
        """
        with self.transaction() as conn:
            return int(
                conn.execute(
                    update(messages)
                    .where(
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.claimed_until.is_not(None),
                    )
                    .values(claimed_until=None)
                ).rowcount
            )

    def set_receipt_due(self, pks: Sequence[int], conn: Connection) -> None:
        if pks:
            conn.execute(
                update(messages).where(messages.c.id.in_(list(pks))).values(receipt_due=True)
            )
            self.announce(conn, RECEIPTS)

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
            messages.c.route,
            messages.c.route_to,
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
            created_at=as_utc(r[15]),
            updated_at=as_utc(r[16]),
            next_attempt_at=as_utc(r[17]) if r[17] else None,
            restricted=bool(r[18]),
            route=Route(r[19]),
            route_to=r[20],
        )


def handed_in(conn: Connection) -> list[int]:
    """The rows ``conn``'s transaction recorded claimed for this process's sender loop
    (handed over once it is durable): not on their way yet."""
    return [i.pk for _, claimed in _HANDED.get(conn, []) for i in claimed.items]


def _handed_over(
    items: Sequence[NewMessage], conn: Connection, handoff: Handoff | None
) -> list[int]:
    """Indexes of the ``items`` for the outbox, all of them, room for them reserved in
    ``handoff``; none without one, without room, or where ``conn`` is not a
    ``transaction()``'s or is in a savepoint."""
    if handoff is None or conn not in _MANAGED or conn.in_nested_transaction():
        return []
    handing = [
        i
        for i, m in enumerate(items)
        if m.direction is Direction.OUTBOUND and m.statuses[-1][0] in OUTBOX_STATES
    ]
    if not handing or any(items[i].body is None for i in handing):
        return []
    return handing if handoff.reserve(len(handing)) else []


def _work_of(items: Sequence[NewMessage]) -> list[str]:
    """The loops that newly recorded ``items`` give work to."""
    topics = []
    if any(i.direction is Direction.OUTBOUND and i.statuses[-1][0] in OUTBOX_STATES for i in items):
        topics.append(OUTBOX)
    if any(i.receipt_due for i in items):
        topics.append(RECEIPTS)
    if any(
        i.direction is Direction.INBOUND and i.statuses[-1][0] in AWAITING_HANDOVER for i in items
    ):
        topics.append(HANDOVER)
    return topics


# Multi-row INSERT ... RETURNING, the primary keys in the rows' order. SQLAlchemy
# keeps that order itself where the database lets it (PostgreSQL); on SQLite it
# needs a sentinel column for it and otherwise inserts one row per statement.
_INSERT_SORTED = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
_INSERT_ANY_ORDER = insert(messages).returning(messages.c.id)


def _insert_messages(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``messages``; their primary keys, in the rows' order.

    On SQLite, one multi-row statement whose returned keys are sorted: ``id``
    is the row id, and a row inserted without one gets one more than the
    largest in the table (https://www.sqlite.org/autoinc.html), while this
    transaction holds SQLite's only write lock; so the rows, inserted in
    order, get consecutive ids in order, whatever order RETURNING gives
    them back in. Ids that are not consecutive would mean the table reached
    the largest row id (SQLite then picks at random): refused rather than
    guessed. Before, SQLAlchemy wrote one INSERT per row here (issue 14).
    """
    if conn.dialect.name != "sqlite":
        return [int(r[0]) for r in conn.execute(_INSERT_SORTED, rows).all()]
    pks = sorted(int(r[0]) for r in conn.execute(_INSERT_ANY_ORDER, rows).all())
    if pks and pks[-1] - pks[0] != len(pks) - 1:
        raise LedgerError(
            f"recorded {len(rows)} messages under ids that are not consecutive "
            f"({pks[0]}..{pks[-1]}): the ledger's row ids are exhausted"
        )
    return pks


def _with_history(record: MessageRecord, entries: tuple[HistoryEntry, ...]) -> MessageRecord:

    return replace(record, history=entries)
