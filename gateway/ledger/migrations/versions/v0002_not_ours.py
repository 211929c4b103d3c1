"""The "not ours" notices a recipient sent, one per received message.

Saying "not ours" twice about one message (a double click, an API call
retried after a timeout) sent the sender a second MISDIRECTED notice; the
notice is now recorded and a repeat answers with it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lifecycle_not_ours",
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=3), nullable=False),
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authority", "message_id"),
    )


def downgrade() -> None:
    op.drop_table("lifecycle_not_ours")
