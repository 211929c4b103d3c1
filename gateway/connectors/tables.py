"""Failed handovers to local systems, one row per failed attempt (the feature's own schema).

A failed handover leaves the message waiting (``VERIFIED``) with its attempt
count raised, which is a state, not an event: this table keeps the events, so
that monitoring can count failures as a rate (``cafgw_handover_failures_total``)
and say since when an authority's local system has been failing.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

handover_failures = Table(
    "handover_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("message_pk", Integer, nullable=False),  # messages.id of the failed handover
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text),
)
Index("ix_handover_failures_message", handover_failures.c.message_pk)
# The failures since a time (the dashboard's rates, at every look; migration 0011).
Index("ix_handover_failures_at", handover_failures.c.authority, handover_failures.c.at)
