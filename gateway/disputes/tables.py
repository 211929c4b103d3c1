"""Dispute tables, on a schema of their own (the ledger creates it with the feature).

Each hosted authority keeps its own copy of a dispute it is party to
(``authority`` = that party's code; ``regional`` for the regional group's
copy), so both ledgers hold the same history whether the two parties share
a gateway or not. Deadlines live here, never in memory: a restarted
gateway carries on from the ledger.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
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
)

metadata = MetaData()

# The current state of a dispute as one party (or the regional group) knows it.
disputes = Table(
    "disputes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(16), nullable=False),
    Column("dispute_id", String(200), nullable=False),
    # the raising party's LA: its gateway runs the escalation clock
    Column("owner", String(3), nullable=False),
    Column("counterpart", String(3), nullable=False),
    Column("case_ref", String(200), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("asked", Text, nullable=False),
    Column("raised_by", Text, nullable=False),  # JSON of the DisputeParty
    Column("against", Text, nullable=False),  # JSON of the DisputeParty
    Column("stage", String(16), nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("resolved", Boolean, nullable=False, default=False),
    Column("outcome", Text),
    Column("interim_arrangement", Text),
    Column("legal_basis", String(32), nullable=False),
    Column("consent_ref", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    UniqueConstraint("authority", "dispute_id", name="uq_dispute"),
)
Index("ix_disputes_clock", disputes.c.resolved, disputes.c.deadline)
# An erasure's disputes about the child's threads (migration 0010).
Index("ix_disputes_thread", disputes.c.authority, disputes.c.correlation_id)

# The history; merged from both sides' messages, each event once.
dispute_events = Table(
    "dispute_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dispute_pk", Integer, ForeignKey("disputes.id"), nullable=False, index=True),
    Column("event_key", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(16), nullable=False),
    Column("by", String(500), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("text", Text),
    # the authority whose signed message asserted the event (or that recorded it here)
    Column("source", String(16), nullable=False),
    UniqueConstraint("dispute_pk", "event_key", name="uq_dispute_event"),
)

# Escalations received for an authority's (or the regional group's) people, until
# they acknowledge them: the line managers' delivery record.
escalations = Table(
    "dispute_escalations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(16), nullable=False),
    Column("escalation_id", String(64), nullable=False),
    Column("sender", String(3), nullable=False),
    Column("dispute_id", String(200), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # ESCALATION or RESOLUTION
    Column("addressee_role", String(32), nullable=False),
    Column("addressee_name", String(500), nullable=False),
    Column("addressee_email", String(500)),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("ack_due_at", DateTime(timezone=True), nullable=False),
    Column("acked_at", DateTime(timezone=True)),
    Column("acked_by", String(500)),
    UniqueConstraint("authority", "escalation_id", name="uq_dispute_escalation"),
)
Index("ix_dispute_escalations_due", escalations.c.status, escalations.c.ack_due_at)
# A dispute's escalations, by its id (each escalation received and acknowledged, an
# erasure; migration 0010).
Index("ix_dispute_escalations_dispute", escalations.c.authority, escalations.c.dispute_id)
