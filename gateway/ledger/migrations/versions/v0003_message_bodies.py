"""Message bodies in a table of their own, written once and never rewritten.

SQLite rewrites a row whole when its size changes, as every status change
does (status, reason, attempts, claim); with the 5 KB signed body in the
``messages`` row, each change rewrote its overflow pages too (issue 14,
docs/performance.md). The bodies move to ``message_bodies``, one row per
message that has one; a message without a body (never had one, or erased)
has no row there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 22:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_bodies",
        sa.Column("message_pk", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_pk"], ["messages.id"]),
        sa.PrimaryKeyConstraint("message_pk"),
    )
    op.execute(
        "INSERT INTO message_bodies (message_pk, body) "
        "SELECT id, body FROM messages WHERE body IS NOT NULL"
    )
    # ALTER TABLE ... DROP COLUMN on SQLite too (3.35 and later), not batch mode's copy
    # of the table: the tables that refer to messages stay as they are.
    op.drop_column("messages", "body")


def downgrade() -> None:
    op.add_column("messages", sa.Column("body", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE messages SET body = "
        "(SELECT b.body FROM message_bodies b WHERE b.message_pk = messages.id)"
    )
    op.drop_table("message_bodies")
