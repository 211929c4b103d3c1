"""Indexes for reads whose cost grew with an authority's whole history.

Each read named the authority and one more column no index held after it, so
SQLite searched by the authority alone: every row of the authority, however few
the read wanted (issue 14, found by reading the plans SQLite chose):

- a requester's existence queries in the last 24 hours (each existence query
  received): every message that requester had sent. A partial index, of the
  existence queries only, so that no other message pays for it on insert;
- an erasure's and the retention's reads of a child's threads (the threads by
  the child's key, the thread's messages, its existence-index entries, its
  disputes) and a dispute's escalations by its id: every row of the authority.
  The thread's messages had an index on the correlation id alone, which SQLite
  passed over for the inbox index on the authority; it now has the authority
  second, in place of the old one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_EXISTENCE_QUERIES = sa.text("purpose = 'EXISTENCE_CHECK'")


def upgrade() -> None:
    op.create_index(
        "ix_messages_existence_asked",
        "messages",
        ["direction", "authority", "sender", "legal_basis", "created_at"],
        sqlite_where=_EXISTENCE_QUERIES,
        postgresql_where=_EXISTENCE_QUERIES,
    )
    op.create_index("ix_messages_thread", "messages", ["correlation_id", "authority"])
    op.drop_index("ix_messages_correlation", table_name="messages")
    op.create_index("ix_case_threads_child", "case_threads", ["authority", "child_key"])
    op.create_index("ix_existence_thread", "existence_index", ["authority", "correlation_id"])
    op.create_index("ix_disputes_thread", "disputes", ["authority", "correlation_id"])
    op.create_index(
        "ix_dispute_escalations_dispute", "dispute_escalations", ["authority", "dispute_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_dispute_escalations_dispute", table_name="dispute_escalations")
    op.drop_index("ix_disputes_thread", table_name="disputes")
    op.drop_index("ix_existence_thread", table_name="existence_index")
    op.drop_index("ix_case_threads_child", table_name="case_threads")
    op.create_index("ix_messages_correlation", "messages", ["correlation_id"])
    op.drop_index("ix_messages_thread", table_name="messages")
    op.drop_index("ix_messages_existence_asked", table_name="messages")
