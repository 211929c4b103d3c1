"""An index on the inbound message id, whoever sent it.

A message id names one message of an authority's inbound: the local system
acknowledges, the drop folder names and "not ours" records a message by its
id alone. The receiver now refuses a message whose id another sender's
message already holds, and reads every sender's rows of a batch's ids to
know it; by the unique key (which names the sender first) that read scanned
every message the authority had received.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 15:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_message_id", "messages", ["direction", "authority", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_message_id", table_name="messages")
