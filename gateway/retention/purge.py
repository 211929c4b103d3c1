"""Erasing what is due: bodies and personal data go, a tombstone stays, a report says what.

For each message: an inbound one still waiting for its local system is
withdrawn from the inbox first (a drop file not yet taken is deleted); its
body is deleted (its row in ``message_bodies``), its case reference and
child key are set to nothing (a rejected input's reasons too, they quote the
wrong values); its status history gets an ERASED note; a tombstone records
ids, digest, dates, parties, legal basis and the rule. Then every feature
erases what it keeps about case threads none of whose messages is left and
children no message refers to any more (``erasers``; held existence queries
naming such a child, ``held_queries``). One audit entry
(counts only) and one run row record it all, in the same transaction, with a
DISMISS entry (ids and digest) for each message erased that asked a human to
act (a dead letter, a quarantined message: ``gateway.ledger.dismissed``). Status
histories and the audit chain still verify: nothing chained is touched, and
``cafgw audit verify`` only asks for a DISCLOSURE entry where a body is
still held.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, exists, func, insert, select, update

from gateway.crossborder import existence_asked
from gateway.crossborder.existence_held import HeldQuery
from gateway.feature import Kit
from gateway.ledger import audit, bodies, dismissed
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import EITHER_DIRECTION, history, messages
from gateway.retention import erasers, held_queries, local_copies
from gateway.retention.local_copies import ParkedCopy
from gateway.retention.plan import Due, emptied
from gateway.retention.tables import retention_runs, tombstones

log = logging.getLogger(__name__)

SCRUBBED = "[erased: the reasons quoted the values refused]"
CHUNK = 500
DISMISSED = "dismissed"  # counted in the run's state: erased, left to nobody
SWEEP_MAX = 2_000  # earlier erased messages a retention run dismisses (``erased_earlier``)
WITHDRAWN_FROM_OUTBOX = "withdrawn_from_outbox"  # counted in the run's state
WITHDRAWN_FROM_INBOX = "withdrawn_from_inbox"  # the report's ``withdrawn``
# Inbound states of a message waiting for its handover (withdrawn before it is erased),
# and those it is handed over from (replayed: a dead letter again due).
_WAITING = (Status.VERIFIED, Status.REPLAYED)
_HANDED_FROM = (*_WAITING, Status.DEAD_LETTERED)


@dataclass(frozen=True)
class RunReport:
    """What one purge or erasure did (or, dry, would do); counts and ids only."""

    run_id: str
    authority: str
    kind: str  # RETENTION or ERASURE
    actor: str
    basis: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime
    messages: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    withdrawn: int = 0
    local_files: int = 0
    parked: int = 0
    state: dict[str, int] = field(default_factory=dict)
    message_ids: tuple[str, ...] = ()
    more: bool = False
    notes: tuple[str, ...] = ()
    held_received: tuple[Due, ...] = field(default=(), repr=False)
    """Rows as received of held existence queries, erased with them (``finish`` takes
    back their drop files as it does the rest's)."""

    def summary(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "by_rule": self.by_rule,
            "withdrawn_from_inbox": self.withdrawn,
            "local_files": self.local_files,
            "parked_dead_letters": self.parked,
            **self.state,
        }


def _chunks(items: Sequence[int]) -> list[list[int]]:
    return [list(items[i : i + CHUNK]) for i in range(0, len(items), CHUNK)]


def _unqueue(kit: Kit, conn: Connection, due: Sequence[Due], why: str) -> int:
    """Outbound messages still queued leave the outbox before they are erased (else the
    sender loop would publish an erased body); one a publisher holds may be on the
    wire, and goes as it is (an erasure asks its recipient to erase it)."""
    # Every outbound row, whatever status it was planned with: one may have come back
    # to the outbox since (a re-send, a replay). ``transition_from`` reads it now.
    outbound = [d.pk for d in due if d.direction == Direction.OUTBOUND.value]
    stopped = kit.ledger.transition_from(
        outbound,
        OUTBOX_STATES,
        Status.WITHDRAWN,
        f"withdrawn from the outbox: {why}",
        conn,
        where=[kit.ledger.not_being_published(conn)],
        next_attempt_at=None,
        claimed_until=None,
    )
    return len(stopped)


def erased_earlier(conn: Connection, authority: str, most: int) -> list[int]:
    """Up to ``most`` of ``authority``'s messages erased here (a tombstone, no body)
    that still ask a human to act and are not dismissed: erased by a version before
    2026-12-07, which left an erased dead letter listed for ever. A retention run
    dismisses them (``dismiss_earlier``: ``SWEEP_MAX``, or the run's ``--limit``)."""
    found = conn.execute(
        select(messages.c.id)
        .where(
            messages.c.authority == authority,
            EITHER_DIRECTION,  # with the statuses, the inbox index's key range
            messages.c.status.in_([s.value for s in dismissed.DISMISSABLE]),
            exists().where(tombstones.c.message_pk == messages.c.id),
            ~bodies.HAS_BODY,
            dismissed.not_dismissed(),
        )
        .order_by(messages.c.id)
        .limit(most)
    )
    return [int(pk) for (pk,) in found.all()]


def foreseen(
    kit: Kit, conn: Connection, authority: str, due: Sequence[Due], *, earlier: int = 0
) -> dict[str, int]:
    """What erasing ``due`` would also do, as the rows stand now (a dry run's count;
    the run reads them again as it erases): withdraw from the local system's inbox
    (``_withdraw``) and from the outbox (``_unqueue``), and leave to nobody what asked
    a human to act (``dismissed.erased``; and up to ``earlier`` of what earlier
    versions erased and left listed: ``erased_earlier``)."""
    left = [d.pk for d in due]
    if earlier:
        left = list(dict.fromkeys([*left, *erased_earlier(conn, authority, earlier)]))
    waiting = {s.value for s in _WAITING}
    inbound = [d for d in due if d.direction == Direction.INBOUND.value]
    queued = {s.value for s in OUTBOX_STATES}
    return {
        WITHDRAWN_FROM_INBOX: sum(
            1
            for d in inbound
            if d.status in waiting
            or (
                d.status == Status.DELIVERED_LOCAL.value
                and local_copies.still_dropped(kit.settings, authority, d.message_id)
            )
        ),
        WITHDRAWN_FROM_OUTBOX: sum(
            1 for d in due if d.direction == Direction.OUTBOUND.value and d.status in queued
        ),
        DISMISSED: dismissed.foreseen(conn, left),
    }


def _withdraw(kit: Kit, conn: Connection, authority: str, due: Sequence[Due], why: str) -> int:
    """Inbound messages not yet handed over leave the inbox before they are erased. The
    status is read now, as ``_unqueue`` reads it: one may have been replayed since it was
    planned (a dead letter, due for its handover again), or handed over as a file."""
    inbound = [d for d in due if d.direction == Direction.INBOUND.value]
    why = f"withdrawn before the local system took it: {why}"
    waiting = kit.ledger.transition_from(
        [d.pk for d in inbound],
        _WAITING,
        Status.WITHDRAWN,
        why,
        conn,
        next_attempt_at=None,
    )
    withdrawn = set(waiting)
    # Handed over since it was planned, or before: its file may still be waiting. (A
    # status moves on from these only: one planned taken is not looked for.)
    handed = {s.value for s in (*_HANDED_FROM, Status.DELIVERED_LOCAL)}
    placed = [
        d.pk
        for d in inbound
        if d.pk not in withdrawn
        and d.status in handed
        and local_copies.still_dropped(kit.settings, authority, d.message_id)
    ]
    taken_back = kit.ledger.transition_from(
        placed, (Status.DELIVERED_LOCAL,), Status.WITHDRAWN, why, conn, next_attempt_at=None
    )
    return len(waiting) + len(taken_back)


def _erase_rows(
    conn: Connection, authority: str, due: Sequence[Due], run_id: str, now: datetime
) -> tuple[set[str], set[str]]:
    """Erase the rows; returns the threads and child keys they were about."""
    threads: set[str] = set()
    children: set[str] = set()
    by_pk = {d.pk: d for d in due}
    for chunk in _chunks(list(by_pk)):
        for thread, key in conn.execute(
            select(messages.c.correlation_id, messages.c.child_key).where(messages.c.id.in_(chunk))
        ).all():
            threads.add(thread)
            if key:
                children.add(key)
        conn.execute(
            update(messages).where(messages.c.id.in_(chunk)).values(case_ref=None, child_key=None)
        )
        bodies.erase(conn, chunk)
        scrub = [pk for pk in chunk if by_pk[pk].scrub_reasons]
        if scrub:
            conn.execute(update(messages).where(messages.c.id.in_(scrub)).values(reason=SCRUBBED))
            conn.execute(
                update(history)
                .where(history.c.message_pk.in_(scrub), history.c.reason.is_not(None))
                .values(reason=SCRUBBED)
            )
        conn.execute(
            insert(history),
            [
                {
                    "message_pk": pk,
                    "status": Status.ERASED.value,
                    "at": now,
                    "reason": f"body and personal data erased ({by_pk[pk].rule}); "
                    f"tombstone kept (run {run_id})",
                }
                for pk in chunk
            ],
        )
        conn.execute(
            insert(tombstones),
            [
                {
                    "message_pk": d.pk,
                    "authority": authority,
                    "direction": d.direction,
                    "message_id": d.message_id,
                    "correlation_id": d.correlation_id,
                    "message_type": d.message_type,
                    "sender": d.sender,
                    "recipient": d.recipient,
                    "legal_basis": d.legal_basis,
                    "status": d.status,
                    "digest": d.digest,
                    "created_at": d.created_at,
                    "erased_at": now,
                    "rule": d.rule[:120],
                    "run_id": run_id,
                }
                for d in (by_pk[pk] for pk in chunk)
            ],
        )
    return threads, children


def _unreferenced(conn: Connection, authority: str, children: Collection[str]) -> set[str]:
    """Of ``children``, those no message of ``authority`` refers to any more."""
    if not children:
        return set()
    still = {
        r[0]
        for r in conn.execute(
            select(messages.c.child_key, func.count())
            .where(
                EITHER_DIRECTION,  # the child's index
                messages.c.authority == authority,
                messages.c.child_key.in_(list(children)),
            )
            .group_by(messages.c.child_key)
        ).all()
    }
    return set(children) - still


def _tombstone_parked(
    conn: Connection, authority: str, parked: Sequence[ParkedCopy], run_id: str, now: datetime
) -> None:
    if parked:
        conn.execute(
            insert(tombstones),
            [
                {
                    "message_pk": None,
                    "authority": authority,
                    "direction": Direction.INBOUND.value,
                    "message_id": p.message_id[:64],
                    "correlation_id": None,
                    "message_type": p.message_type,
                    "sender": p.sender,
                    "recipient": authority,
                    "legal_basis": "?",
                    "status": "PARKED",
                    "digest": p.digest,
                    "created_at": p.parked_at,
                    "erased_at": now,
                    "rule": "dead_letter_days (parked on the broker)",
                    "run_id": run_id,
                }
                for p in parked
            ],
        )


def erase(
    kit: Kit,
    authority: str,
    due: Sequence[Due],
    *,
    kind: str,
    actor: str,
    basis: str,
    parked: Sequence[ParkedCopy] = (),
    threads: Collection[str] = (),
    children: Collection[str] = (),
    held: Sequence[HeldQuery] = (),
    more: bool = False,
    notes: tuple[str, ...] = (),
    also: Callable[[Connection], dict[str, int]] | None = None,
    dismiss_earlier: int = 0,
) -> RunReport:
    """Erase ``due`` (and the parked copies, threads, children and held existence
    queries past their period named) at ``authority``.

    ``also`` runs in the same transaction (e.g. queueing erasure notices) and
    adds its counts to the report. ``dismiss_earlier``: also dismiss up to that many of
    what earlier versions erased and left to a human (``erased_earlier``).
    """
    gone_parked = (
        kit.transport.discard_parked(authority, [(p.message_id, p.digest) for p in parked])
        if parked
        else 0
    )
    with kit.ledger.transaction() as conn:
        report = erase_in(
            kit,
            conn,
            authority,
            due,
            kind=kind,
            actor=actor,
            basis=basis,
            parked=parked if gone_parked else (),
            gone_parked=gone_parked,
            threads=threads,
            children=children,
            held=held,
            more=more,
            notes=notes,
            also=also,
            dismiss_earlier=dismiss_earlier,
        )
    return finish(kit, report, due)


def erase_in(
    kit: Kit,
    conn: Connection,
    authority: str,
    due: Sequence[Due],
    *,
    kind: str,
    actor: str,
    basis: str,
    parked: Sequence[ParkedCopy] = (),
    gone_parked: int = 0,
    threads: Collection[str] = (),
    children: Collection[str] = (),
    held: Sequence[HeldQuery] = (),
    held_about_erased: bool = True,
    more: bool = False,
    notes: tuple[str, ...] = (),
    also: Callable[[Connection], dict[str, int]] | None = None,
    dismiss_earlier: int = 0,
) -> RunReport:
    """The ledger's part of ``erase``, in the caller's transaction (e.g. while a received
    erasure request is recorded); ``finish`` it once that transaction committed.

    ``held_about_erased``: also scrub the held existence queries about a child no
    longer held here once this run's threads are gone. Not for a received erasure
    request: its sender may erase what it sent, never another authority's query (the
    coordinator still decides it, and would answer no match)."""
    run_id = str(uuid.uuid4())
    started = kit.clock()
    # Read before this run's own rows are erased, which would then be found here too.
    earlier = erased_earlier(conn, authority, dismiss_earlier) if dismiss_earlier else []
    withdrawn = _withdraw(kit, conn, authority, due, basis)
    unqueued = _unqueue(kit, conn, due, basis)
    touched, keys = _erase_rows(conn, authority, due, run_id, started)
    # The notes of existence queries asked (by child) go with the queries' rows.
    existence_asked.forget(
        conn, authority, [d.message_id for d in due if d.direction == Direction.OUTBOUND.value]
    )
    done_threads = emptied(conn, authority, touched) | set(threads)
    # Held existence queries before the erasers, which delete the index entries read
    # here; their rows as received go with them, as the rest did.
    asked = _held_queries(
        kit,
        conn,
        authority,
        held=held,
        threads=done_threads if held_about_erased else None,
        rows=[d.pk for d in due],
        basis=basis,
        actor=actor,
        run_id=run_id,
        now=started,
    )
    withdrawn += asked.withdrawn
    done_threads |= asked.threads
    due = [*due, *asked.rows]
    done_children = _unreferenced(conn, authority, keys | set(children))
    state = {held_queries.COUNT: asked.queries} if asked.queries else {}
    if unqueued:
        state[WITHDRAWN_FROM_OUTBOX] = unqueued
    for eraser in erasers.ERASERS:
        for what, count in eraser(conn, authority, done_threads, done_children).items():
            state[what] = state.get(what, 0) + count
    _tombstone_parked(conn, authority, parked, run_id, started)
    # Erased, a message left to a human (a dead letter, a quarantined one) has nothing
    # left to replay or look at: nobody is asked to act on it.
    left = list(dict.fromkeys([*(d.pk for d in due), *earlier]))
    closed = dismissed.erased(kit.ledger, conn, left, f"{kind.lower()} run {run_id}")
    if closed:
        state[DISMISSED] = closed
    if also is not None:
        for what, count in also(conn).items():
            state[what] = state.get(what, 0) + count
    report = RunReport(
        run_id=run_id,
        authority=authority,
        kind=kind,
        actor=actor,
        basis=basis,
        dry_run=False,
        started_at=started,
        finished_at=kit.clock(),
        messages=len(due),
        by_rule=_by_rule(due),
        withdrawn=withdrawn,
        parked=gone_parked,
        state=state,
        message_ids=tuple(d.message_id for d in due),
        more=more,
        notes=notes,
        held_received=asked.rows,
    )
    if due or gone_parked or any(state.values()):
        _record(kit, conn, report)
    return report


@dataclass(frozen=True)
class _HeldPass:
    """What ``_held_queries`` did: queries scrubbed, their rows as received erased
    (withdrawn from the inbox first: ``withdrawn``), and the threads those rows left
    with nothing unerased."""

    queries: int
    rows: tuple[Due, ...]
    withdrawn: int
    threads: frozenset[str]


def _held_queries(
    kit: Kit,
    conn: Connection,
    authority: str,
    *,
    held: Sequence[HeldQuery],
    threads: Collection[str] | None,
    rows: Sequence[int],
    basis: str,
    actor: str,
    run_id: str,
    now: datetime,
) -> _HeldPass:
    """Scrub the held existence queries past their period (``held``), about a child
    erased with ``threads`` (None: none of those) or whose row as received is one of
    ``rows``; erase their rows as received as the rest, and look again at what that
    erased (a query's thread may have indexed another child)."""
    queries, withdrawn = 0, 0
    erased: list[Due] = []
    seen = set(threads or ())
    new = set(seen)
    while True:
        scrubbed = held_queries.scrub(
            kit,
            conn,
            authority,
            expired=held,
            threads=() if threads is None else new,
            rows=rows,
            now=now,
            actor=actor,
            run_id=run_id,
        )
        queries += len(scrubbed.expired) + len(scrubbed.erased) + len(scrubbed.withdrawn)
        if not scrubbed.received:
            break
        withdrawn += _withdraw(kit, conn, authority, scrubbed.received, basis)
        touched, _ = _erase_rows(conn, authority, scrubbed.received, run_id, now)
        new = emptied(conn, authority, touched) - seen
        seen |= new
        erased += scrubbed.received
        held, rows = (), [d.pk for d in scrubbed.received]
    return _HeldPass(queries, tuple(erased), withdrawn, frozenset(seen - set(threads or ())))


def finish(kit: Kit, report: RunReport, due: Sequence[Due]) -> RunReport:
    """After the erasure committed: empty SQLite's write-ahead log, delete drop files
    the local system has not taken; the report with the files counted."""
    _compact(kit)
    authority, run_id = report.authority, report.run_id
    files = local_copies.remove_dropped(
        kit.settings,
        authority,
        # A quarantined row never had a file: the one under its id, if any, is the
        # message that holds the id (another sender's, whose row may not be due).
        [
            d.message_id
            for d in (*due, *report.held_received)
            if d.direction == Direction.INBOUND.value and d.status != Status.QUARANTINED.value
        ],
    )
    if files:
        report = replace(report, local_files=files)
        with kit.ledger.transaction() as conn:
            conn.execute(
                update(retention_runs)
                .where(retention_runs.c.run_id == run_id)
                .values(summary=json.dumps(report.summary(), sort_keys=True))
            )
    if report.messages or report.parked:
        log.info(
            "%s run %s at %s erased %d messages, %d parked dead letters, %d local files",
            report.kind.lower(),
            run_id,
            authority,
            report.messages,
            report.parked,
            files,
            extra={"authority": authority},
        )
    return report


def _compact(kit: Kit) -> None:
    """SQLite keeps old page images in its write-ahead log: empty it, so erased values go.

    (Freed pages are zeroed by ``PRAGMA secure_delete``; PostgreSQL needs a
    VACUUM of the ledger's tables, see docs/data-protection.md.)
    """
    if kit.ledger.engine.dialect.name == "sqlite":
        with kit.ledger.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _by_rule(due: Sequence[Due]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in due:
        counts[d.rule] = counts.get(d.rule, 0) + 1
    return dict(sorted(counts.items()))


def _record(kit: Kit, conn: Connection, report: RunReport) -> None:
    summary = json.dumps(report.summary(), sort_keys=True)
    conn.execute(
        insert(retention_runs).values(
            run_id=report.run_id,
            authority=report.authority,
            kind=report.kind,
            actor=report.actor[:128],
            basis=report.basis,
            started_at=report.started_at,
            finished_at=report.finished_at,
            summary=summary,
        )
    )
    audit.append(
        kit.ledger,
        [
            audit.AuditEvent(
                actor=report.actor[:128],
                action=report.kind,
                authority=report.authority,
                detail=f"run {report.run_id}: {summary}",
            )
        ],
        conn,
    )
