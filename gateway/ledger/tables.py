"""Ledger tables (SQLAlchemy Core): the same code on SQLite and PostgreSQL.

What the code reads and writes; the database gets them from the migrations
(``gateway/ledger/migrations``), and a test fails when the two differ: a
change here needs a revision (docs/architecture.md, "Changing the schema").
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    literal_column,
)

from gateway.ledger.in_lists import among
from gateway.ledger.prefix import bytewise
from gateway.ledger.status import Direction
from gateway.model import Purpose

metadata = MetaData()

# One row per message per hosted authority and direction. For outbound rows
# `authority` is the sender, for inbound rows the recipient. Its signed bytes
# are in `message_bodies` (below).
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    # a hosted LA, or "regional" for what the regional group's queue received
    Column("authority", String(16), nullable=False),
    Column("sender", String(16), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("message_type", String(32), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("case_ref", String(64)),
    Column("legal_basis", String(32), nullable=False),
    Column("purpose", String(32)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("digest", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("receipt_due", Boolean, nullable=False, default=False),
    Column("receipt_message_id", String(36)),
    Column("child_key", String(64)),
    Column("restricted", Boolean, nullable=False, default=False),
    # inbox or escalation (gateway.ledger.status.Route), and the queue owner
    Column("route", String(16), nullable=False, default="inbox"),
    Column("route_to", String(16)),
    Column("content_digest", String(64)),
    # a publisher's lease on an outbox row, so two processes never publish it both
    Column("claimed_until", DateTime(timezone=True)),
    # A sent row's last look that found its recipient's inbox holding messages (or
    # could not look): it may have left the inbox for the retry queues only after
    # that (``services.backlog``).
    Column("backlog_seen_at", DateTime(timezone=True)),
    # The same id with another digest is kept as a separate (quarantined) row.
    UniqueConstraint("direction", "authority", "sender", "message_id", "digest", name="uq_message"),
)
Index("ix_messages_outbox", messages.c.direction, messages.c.status, messages.c.next_attempt_at)
Index("ix_messages_inbox", messages.c.authority, messages.c.direction, messages.c.status)
Index("ix_messages_receipt_due", messages.c.receipt_due)
# A thread's messages; with the authority second, the reads that name both (the
# retention's threads emptied and their states, an erasure's messages of the
# child's threads) search it by both: by the correlation id alone SQLite chose the
# inbox index on the authority, every message of it (migration 0010, issue 14).
Index("ix_messages_thread", messages.c.correlation_id, messages.c.authority)
# The receiver's content dedup and the sender's per-record reads (past
# recipients, held and queued copies of the child, the case's sent content):
# without these each scanned every message of the authority (issue 14).
Index(
    "ix_messages_content",
    messages.c.direction,
    messages.c.authority,
    messages.c.sender,
    messages.c.content_digest,
)
# The recording transaction's read of what is known of a batch's message ids, from
# whichever sender (``InboundQueries.inbound_known``; migration 0004).
Index("ix_messages_message_id", messages.c.direction, messages.c.authority, messages.c.message_id)
Index("ix_messages_child", messages.c.direction, messages.c.authority, messages.c.child_key)
Index("ix_messages_case", messages.c.direction, messages.c.authority, messages.c.case_ref)
# The latest messages to change, newest first (the dashboard's list, ``stats.latest``),
# read from the end of each authority's part: before, every message of the
# authorities shown was read and sorted at each look (migration 0012, issue 14).
# A status move writes its entry again: no CPU a bench shows, more WAL written
# (``bench.status_moves``, docs/performance.md).
Index("ix_messages_changed", messages.c.authority, messages.c.updated_at)
# The message search's pages, newest first (``ledger.search``): likewise, by when each
# message was made, which never changes (migration 0012).
Index("ix_messages_made", messages.c.authority, messages.c.created_at)
# A search by the first characters of a case reference, whatever the case of its
# letters, and on PostgreSQL of a message id: a range of these (``ledger.prefix``),
# where ``LIKE`` read every message of the authority when fewer than a page matched
# (migration 0013). SQLite's ids are searched in ``ix_messages_message_id``, which
# compares as SQLite always does, byte by byte; PostgreSQL's in its collation.
Index(
    "ix_messages_case_folded",
    messages.c.direction,
    messages.c.authority,
    func.upper(bytewise(messages.c.case_ref)),
)
Index(
    "ix_messages_id_bytes",
    messages.c.direction,
    messages.c.authority,
    bytewise(messages.c.message_id),
).ddl_if(dialect="postgresql")
# These indexes start with the direction: a read of either direction names both, so
# that they are searched (by the authority alone, SQLite read every message of the
# authority; issue 14).
EITHER_DIRECTION = among(messages.c.direction, (d.value for d in Direction))


def under_id(authority: str, message_id: str) -> ColumnElement[bool]:
    """``authority``'s messages under ``message_id``, of either direction: one search of
    the message-id index, which starts with the direction (naming none, SQLite read
    every message of the authority; issue 14). A status beside it is best
    ``unindexed``: where the status's index ties with the id's, SQLite takes it."""
    return and_(
        EITHER_DIRECTION, messages.c.authority == authority, messages.c.message_id == message_id
    )


def of_child(key: str) -> ColumnElement[bool]:
    """The messages under a child's key, of either direction: with the authority, one
    search of the child's index, which starts with the direction."""
    return and_(EITHER_DIRECTION, messages.c.child_key == key)


def about_child(key: str, threads: Collection[str]) -> tuple[ColumnElement[bool], ...]:
    """The messages about a child, in parts: under its key, and on one of ``threads``
    (the existence queries asked about it carry no child key). With the authority
    named, each part is an index search (the child's, the thread's); read each on its
    own and merge. As one OR, SQLite read every message of the authority through the
    inbox index, as it did when the child's part named no direction (an erasure, a
    subject access report; issue 14)."""
    on_threads = (messages.c.correlation_id.in_(sorted(threads)),) if threads else ()
    return (of_child(key), *on_threads)


# Existence queries received, by their sender and basis: the asked gateway's count of a
# requester's queries in 24 hours read everything that requester had ever sent
# (``crossborder.receive``). Partial, so that no other message pays for it on insert;
# a read names ``EXISTENCE_QUERIES`` as written here, for SQLite to know the index
# holds its rows (migration 0010).
EXISTENCE_QUERIES = messages.c.purpose == literal_column(f"'{Purpose.EXISTENCE_CHECK.value}'")
Index(
    "ix_messages_existence_asked",
    messages.c.direction,
    messages.c.authority,
    messages.c.sender,
    messages.c.legal_basis,
    messages.c.created_at,
    sqlite_where=EXISTENCE_QUERIES,
    postgresql_where=EXISTENCE_QUERIES,
)

# The exact signed bytes of a message, written once with it and never changed:
# re-sends use the same bytes, so the same digest. Apart from its row because
# SQLite rewrites a row whole when its size changes, as every status change does,
# and a 5 KB body in the row made each change rewrite its two overflow pages too
# (issue 14). No row here: recorded without a body, or the body erased.
message_bodies = Table(
    "message_bodies",
    metadata,
    Column("message_pk", Integer, ForeignKey("messages.id"), primary_key=True, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
)

history = Table(
    "status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_pk", Integer, ForeignKey("messages.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),
)
# Monitoring reads the history by time (rates over the last hours).
Index("ix_status_history_at", history.c.at)

# Append-only, hash-chained: each entry's hash covers its content and the
# previous entry's hash, so an altered or deleted entry breaks the chain.
audit = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("authority", String(3), nullable=False),
    Column("counterparty", String(3)),
    Column("legal_basis", String(32)),
    Column("message_id", String(36)),
    Column("digest", String(64)),
    Column("detail", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
# The entries about a message (the dashboard's detail, a child's report and
# disclosures; migration 0011: the whole log was read for them).
Index("ix_audit_message", audit.c.message_id)

# The child an audit entry is about (reads and disclosures), for "who saw and who
# received this child's data". A side table so that audit_log keeps its columns;
# the entry's hash covers the child key too, so a changed row here is detected.
audit_subjects = Table(
    "audit_subjects",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("child_key", String(64), nullable=False, index=True),
)

# Heads of peers' audit chains, as each peer's signed receipts reported them
# (gateway.ledger.audit_anchor): evidence held here of what the peer's chain was,
# given back to the peer in our receipts so that it can check its chain against it.
audit_peer_heads = Table(
    "audit_peer_heads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(16), nullable=False),  # the hosted authority the receipt came to
    Column("peer", String(16), nullable=False),  # the receipt's signer
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("message_id", String(64), nullable=False),  # the receipt that carried it
)
Index("ix_audit_peer_heads_seq", audit_peer_heads.c.peer, audit_peer_heads.c.seq)
Index("ix_audit_peer_heads_id", audit_peer_heads.c.peer, audit_peer_heads.c.id)

# Heads of this gateway's own chain that a peer says it holds (given back in the
# peer's signed receipts): this chain must still contain each of them.
audit_anchors = Table(
    "audit_anchors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(16), nullable=False),  # the hosted authority the receipt came to
    Column("peer", String(16), nullable=False),  # who holds the head
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("reported_in", String(64), nullable=False),  # our receipt that reported it
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("message_id", String(64), nullable=False),  # the peer's receipt that gave it back
    UniqueConstraint("authority", "peer", "seq", "hash", name="uq_audit_anchor"),
)

# The last check of the chain against the anchors, per (authority, peer), for
# the metric cafgw_audit_anchor_mismatch (written by the audit-anchor job).
audit_anchor_checks = Table(
    "audit_anchor_checks",
    metadata,
    Column("authority", String(16), primary_key=True),
    Column("peer", String(16), primary_key=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("anchors", Integer, nullable=False),
    Column("mismatches", Integer, nullable=False),
    Column("detail", Text),
)

# Replays of inbound messages the broker had parked (they usually have no row in
# `messages`: they were never recorded). Which admin replayed which message, when.
parked_replays = Table(
    "parked_replays",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("message_id", String(64), nullable=False, index=True),
    Column("sender", String(16)),
    Column("message_type", String(32)),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# A human looked at a message that needed one (a rejected record, a quarantined
# or dead-lettered message) and took it off the "needs a human" list: who, why,
# when, and the status it had then (or the ledger did, for one whose body was
# erased: ``gateway.ledger.dismissed``). The message, its status and its history are
# left as they were; if it moves again later (a replay dead-lettered again), it
# needs a human again.
dismissals = Table(
    "dismissals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_pk", Integer, ForeignKey("messages.id"), nullable=False, index=True),
    Column("authority", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# POST /v1/messages with an Idempotency-Key: the first answer, so that a local
# system retrying after a lost answer gets that answer again, never a second
# submission. ``status_code`` 0 while the first request is still being handled.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_digest", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority", "key", name="uq_idempotency_key"),
)

# Which replica runs each periodic job (the disputes clock, the acknowledgement
# deadline, retention, re-sends): a lease by conditional update, renewed by its
# holder while it runs, taken over by another replica once it lapses
# (gateway.ledger.jobs). Replicas sharing a ledger so run each job once.
job_leases = Table(
    "job_leases",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
)
