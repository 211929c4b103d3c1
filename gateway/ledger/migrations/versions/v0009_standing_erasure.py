"""An erasure request stands, as a recall does, for a record not received yet.

An erasure request that reached the recipient before a message it names (the
message failed there for a moment and waits in a delay queue, or was parked)
found nothing, was answered ``NOT_HELD``, and the message, when it came, was
kept. It now stands for it (``gateway.lifecycle.standing``): the message is
withdrawn and erased as it arrives. What stands says which it is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "lifecycle_standing",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="RECALL"),
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later). What stood for an
    # erasure would stand for a recall: it goes first.
    op.execute("DELETE FROM lifecycle_standing WHERE kind = 'ERASURE'")
    op.drop_column("lifecycle_standing", "kind")
