"""Retention tables, on a schema of their own (the ledger creates it with the feature).

Nothing here holds personal data: a tombstone names the message (ids,
digest, dates, parties, legal basis) and why it was erased; a run says
what one purge or erasure did, in counts.
"""

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

# One row per erased message (message_pk is None for a message that only existed
# on the broker, e.g. a parked dead letter that was never recorded).
tombstones = Table(
    "tombstones",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_pk", Integer, unique=True),  # messages.id of the erased message
    Column("authority", String(3), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("correlation_id", String(64)),
    Column("message_type", String(32), nullable=False),
    Column("sender", String(16), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("legal_basis", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("digest", String(64)),
    Column("created_at", DateTime(timezone=True)),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("rule", String(120), nullable=False),
    Column("run_id", String(36), nullable=False, index=True),
)
Index("ix_tombstones_message", tombstones.c.authority, tombstones.c.message_id)

# One row per purge or erasure that erased something: what, why, who asked, counts.
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False, unique=True),
    Column("authority", String(3), nullable=False),
    Column("kind", String(16), nullable=False),  # RETENTION or ERASURE
    Column("actor", String(128), nullable=False),
    Column("basis", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),  # JSON of the counts
)

# The state of each case thread as the newest Assessment on it says, cached by
# that message's row so a body is parsed once, not on every run.
case_states = Table(
    "retention_case_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("assessment_pk", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("readable", Boolean, nullable=False, default=True),
    UniqueConstraint("authority", "correlation_id", name="uq_case_state"),
)

# When the periodic retention job runs next: shared by every gateway process on
# this ledger, so a restart does not purge at once and two processes do not both run.
schedule = Table(
    "retention_schedule",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False, unique=True),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
)
