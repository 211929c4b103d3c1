"""When a sent message's recipient was last seen with a backlog.

Before re-sending, the sender waits while the message may still be retried in
its recipient's retry queues: for the recipient's retry window from when the
message could last have been in its inbox, its last send or the last look that
found the inbox holding messages (``services.backlog``). The latter is kept
here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("backlog_seen_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later): a batch operation
    # would copy ``messages``, which the history's foreign key refuses.
    op.drop_column("messages", "backlog_seen_at")
