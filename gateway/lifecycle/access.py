"""Access notices: the owner of a record learns when it was opened at the recipient.

At the recipient (an authority with ``delivery.access_notices`` on), the job
reads what happened since its last batch, at most every
``access_notice_batch_s``:

- ``LOCAL_ACK``: a received record was acknowledged by the local system
  (a pull acknowledgement, a webhook 2xx, a drop file taken): its status
  history's ``ACKNOWLEDGED`` entry;
- ``API_READ`` / ``LOCAL_DOWNLOAD``: it was served by ``GET /v1/inbox``
  (canonical or ``format=local``): the audit log's ``READ`` entry.

Each event is reported once, in one signed ``AccessNotice`` per sender (no
personal data: ids, digests, times, the kind and the way it was opened,
never the reader's name). Reporting starts when the switch is turned on;
the cursors and the next batch time are kept in the ledger and claimed with
a conditional update.

At the sender, a notice notes ``ACCESSED`` on the history of each message it
names that was sent to the notice's signer (with the digest sent), and is
itself kept from the local system.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from gateway.feature import ApplyContext, Effect, Kit, Received
from gateway.ledger.id_order import visible_bound
from gateway.ledger.status import DISCLOSING, Direction, Route, Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import audit as audit_log
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed
from gateway.lifecycle import receiver
from gateway.lifecycle.tables import access_cursors
from gateway.model import AccessEvent, AccessKind, AccessNotice, LegalBasis

SCAN = 5000  # events read per authority per batch
PER_NOTICE = 500
INBOX_READS = {"inbox": AccessKind.API_READ, "inbox (local format)": AccessKind.LOCAL_DOWNLOAD}
Event = tuple[str, AccessEvent]  # (the record's sender, the event)


def _tops(conn: Connection, now: datetime) -> tuple[int, int]:
    """How far the cursors may move: the newest status-history row (on PostgreSQL, the
    newest that is ``id_order.LAG_S`` old: one with a lower id may still commit, and
    its opening would never be reported) and the audit chain's head (appended under
    a lock, its seqs visible in order)."""
    newest = select(func.max(history.c.id))
    bound = visible_bound(conn, now)
    if bound is not None:
        newest = newest.where(history.c.at <= bound)
    top_history = conn.execute(newest).scalar() or 0
    top_audit = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
    return int(top_history), int(top_audit)


def _claim(conn: Connection, code: str, now: datetime, batch_s: float) -> tuple[int, int] | None:
    """The cursors of ``code`` when its batch is due and this process claimed it."""
    row = conn.execute(select(access_cursors).where(access_cursors.c.authority == code)).first()
    following = now + timedelta(seconds=batch_s)
    if row is None:
        # Switched on now: what happened before is not reported.
        top_history, top_audit = _tops(conn, now)
        conn.execute(
            insert(access_cursors).values(
                authority=code, history_after=top_history, audit_after=top_audit, due_at=following
            )
        )
        return None
    r = row._mapping
    if now < as_utc(r["due_at"]):
        return None
    claimed = conn.execute(
        update(access_cursors)
        .where(access_cursors.c.authority == code, access_cursors.c.due_at == r["due_at"])
        .values(due_at=following)
    ).rowcount
    return (int(r["history_after"]), int(r["audit_after"])) if claimed == 1 else None


def _event(
    message_id: str, digest: str | None, at: datetime, kind: AccessKind, by: str
) -> AccessEvent:
    return AccessEvent(message_id, digest or "", as_utc(at), kind, by)


def _acks(conn: Connection, code: str, after: int, top: int) -> tuple[list[Event], int]:
    rows = conn.execute(
        select(
            history.c.id, history.c.at, messages.c.message_id, messages.c.digest, messages.c.sender
        )
        .join(messages, messages.c.id == history.c.message_pk)
        .where(
            history.c.id > after,
            history.c.id <= top,
            history.c.status == Status.ACKNOWLEDGED.value,
            # Not searched by: the window's history is found by its keys, then its
            # messages; by these SQLite read every message the authority had received
            # at every batch (issue 14).
            unindexed(messages.c.authority) == code,
            unindexed(messages.c.direction) == Direction.INBOUND.value,
            messages.c.route == Route.INBOX.value,
            messages.c.legal_basis.in_(DISCLOSING),
            messages.c.sender != code,
        )
        .order_by(history.c.id)
        .limit(SCAN)
    ).all()
    events = [
        (r.sender, _event(r.message_id, r.digest, r.at, AccessKind.LOCAL_ACK, "local system"))
        for r in rows
    ]
    return events, (int(rows[-1].id) if len(rows) == SCAN else top)


def _reads(conn: Connection, code: str, after: int, top: int) -> tuple[list[Event], int]:
    rows = conn.execute(
        select(
            audit_log.c.seq,
            audit_log.c.at,
            audit_log.c.message_id,
            audit_log.c.digest,
            audit_log.c.counterparty,
            audit_log.c.detail,
        )
        .where(
            audit_log.c.seq > after,
            audit_log.c.seq <= top,
            audit_log.c.action == "READ",
            audit_log.c.authority == code,
            audit_log.c.detail.in_(list(INBOX_READS)),
            audit_log.c.message_id.is_not(None),
            audit_log.c.counterparty.is_not(None),
            audit_log.c.counterparty != code,
        )
        .order_by(audit_log.c.seq)
        .limit(SCAN)
    ).all()
    # Only records with personal data: the audit entry names the message, the ledger its basis.
    ids = sorted({r.message_id for r in rows})
    personal = {
        (m.sender, m.message_id)
        for m in conn.execute(
            select(messages.c.sender, messages.c.message_id).where(
                messages.c.authority == code,
                messages.c.direction == Direction.INBOUND.value,
                messages.c.message_id.in_(ids),
                messages.c.legal_basis.in_(DISCLOSING),
            )
        ).all()
    }
    events = [
        (r.counterparty, _event(r.message_id, r.digest, r.at, INBOX_READS[r.detail], "API (inbox)"))
        for r in rows
        if (r.counterparty, r.message_id) in personal
    ]
    return events, (int(rows[-1].seq) if len(rows) == SCAN else top)


def _batch(kit: Kit, code: str, batch_s: float) -> int:
    sent = 0
    now = kit.clock()
    with kit.ledger.transaction() as conn:
        cursors = _claim(conn, code, now, batch_s)
        if cursors is None:
            return 0
        top_history, top_audit = _tops(conn, now)
        acks, history_after = _acks(conn, code, cursors[0], top_history)
        reads, audit_after = _reads(conn, code, cursors[1], top_audit)
        by_sender: dict[str, list[AccessEvent]] = defaultdict(list)
        for sender, event in sorted(acks + reads, key=lambda e: e[1].at):
            if sender in kit.settings.directory:
                by_sender[sender].append(event)
        for sender, events in sorted(by_sender.items()):
            for start in range(0, len(events), PER_NOTICE):
                chunk = tuple(events[start : start + PER_NOTICE])
                env = kit.outbox.envelope(
                    sender=code,
                    recipient=sender,
                    body=AccessNotice(chunk),
                    correlation=chunk[0].message_id,
                    legal_basis=LegalBasis.NO_PERSONAL_DATA,
                )
                kit.ledger.record([kit.outbox.sign(env)], conn)
                sent += 1
        conn.execute(
            update(access_cursors)
            .where(access_cursors.c.authority == code)
            .values(history_after=history_after, audit_after=audit_after)
        )
    return sent


def send_access_notices(kit: Kit) -> int:
    """Queue the due access notices of every hosted authority that sends them; how many."""
    sent = 0
    for code in kit.hosted:
        delivery = kit.settings.delivery_for(code)
        if delivery.access_notices:
            sent += _batch(kit, code, delivery.access_notice_batch_s)
    return sent


def on_access_notice(ctx: ApplyContext, msg: Received) -> Effect:
    """At the sender: note each reported opening on the history of the message opened."""
    body = msg.env.body
    assert isinstance(body, AccessNotice)
    receiver.to_an_inbox(msg)

    def effect() -> None:
        ids = sorted({e.message_id[:64] for e in body.events})
        ours = {
            r.message_id: (int(r.id), r.digest)
            for r in ctx.conn.execute(
                select(messages.c.id, messages.c.message_id, messages.c.digest).where(
                    messages.c.authority == msg.authority,
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.recipient == msg.sender,
                    messages.c.message_id.in_(ids),
                )
            ).all()
        }
        for event in body.events:
            found = ours.get(event.message_id)
            if found is None or found[1] != event.digest:
                continue  # not a message we sent to that authority: nothing to note
            how = event.kind.value + (f" by {event.by}" if event.by else "")
            ctx.kit.ledger.note(
                found[0],
                Status.ACCESSED,
                f"opened at {msg.sender}: {how} at {event.at.isoformat(timespec='seconds')} "
                f"(access notice {msg.message_id})",
                ctx.conn,
            )
        ctx.keep_from_local_system("an access notice: shown in the history of what it names")

    return effect
