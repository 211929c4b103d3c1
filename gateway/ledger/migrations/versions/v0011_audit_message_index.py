"""An index on the audit log's message id, and one on the handover failures' time.

The audit log grows with every disclosure and read, and is kept for years. The
entries about one message were found by reading all of it: the dashboard's
message detail at every look, a child's subject access report and disclosures
list for the entries about the child's messages (issue 14). The failed
handovers (one row per failed attempt, kept) since a time were found by
reading all of them, at every look at the dashboard.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 20:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_message", "audit_log", ["message_id"])
    op.create_index("ix_handover_failures_at", "handover_failures", ["authority", "at"])


def downgrade() -> None:
    op.drop_index("ix_handover_failures_at", table_name="handover_failures")
    op.drop_index("ix_audit_message", table_name="audit_log")
