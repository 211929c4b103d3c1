"""Indexes on when each message was made and last changed, by authority.

The dashboard's list of the latest messages (``stats.latest``) read every
message of the authorities shown and sorted them by ``updated_at``, at every
look (every 5 s while it is open): 92-116 ms of CPU at 100,000 messages, holding
the gateway's interpreter lock from its consumers (issue 14). The message
search's pages (``ledger.search``: the dashboard's list of messages and the
API's) did the same by ``created_at``. With these indexes each reads the newest
rows of each authority and stops. ``created_at`` never changes: its index is
written once, when the message is recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_changed", "messages", ["authority", "updated_at"])
    op.create_index("ix_messages_made", "messages", ["authority", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_made", table_name="messages")
    op.drop_index("ix_messages_changed", table_name="messages")
