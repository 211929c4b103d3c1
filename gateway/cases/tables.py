"""Case-thread tables, on a schema of their own (the ledger creates it with the feature)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# One row per (authority, case thread): this authority's view of the case.
case_threads = Table(
    "case_threads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    # the authority whose case it is (whose case system holds the reference)
    Column("owner", String(3), nullable=False),
    Column("case_ref", String(64)),
    Column("child_key", String(64)),
    Column("initiating_la", String(3)),
    Column("residence_la", String(3)),
    Column("governing_la", String(3)),
    Column("governing_since", String(40)),
    Column("inform_family", Boolean),
    # who said the family must not be told (only they, or the owner, may lift it)
    Column("family_restricted_by", String(3)),
    Column("plan_digest", String(64)),
    Column("plan_consent_ref", String(200)),
    Column("parties", Text, nullable=False, default="[]"),
    Column("leads", Text, nullable=False, default="[]"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority", "correlation_id", name="uq_case_thread"),
)
Index("ix_case_threads_ref", case_threads.c.authority, case_threads.c.case_ref)
# An erasure finds the child's threads by its key (migration 0010; before, every
# thread of the authority was read).
Index("ix_case_threads_child", case_threads.c.authority, case_threads.c.child_key)

# What happened on the thread: governing switches, notices sent and received,
# evaluations. `notice_key` makes a notice idempotent across re-submissions.
case_log = Table(
    "case_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("counterparty", String(3)),
    Column("message_id", String(64)),
    Column("notice_key", String(200)),
    Column("detail", Text),
)
Index("ix_case_log_thread", case_log.c.authority, case_log.c.correlation_id)
Index("ix_case_log_notice", case_log.c.authority, case_log.c.notice_key)

# Prior agreements for a practitioner to deliver a service outside their own
# authority (practitioner, their line manager and the local CAF coordinator).
service_agreements = Table(
    "service_agreements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("practitioner_key", String(200), nullable=False),
    Column("practitioner", String(200), nullable=False),
    Column("delivery_la", String(3), nullable=False),
    Column("line_manager", String(200), nullable=False),
    Column("coordinator", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority", "practitioner_key", "delivery_la", name="uq_agreement"),
)
