"""An erasure request stands, as a recall does, for a record not received yet.

An erasure request that reached the recipient before a message it names (the
message failed there for a moment and waits in a delay queue, or was parked)
found nothing, was answered ``NOT_HELD``, and the message, when it came, was
kept. It now stands for it (``gateway.lifecycle.standing``): the message is
withdrawn and erased as it arrives. What stands says which it is, and one
request may stand for several messages, so a row is unique by what it names too.

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

_OLD = ["authority", "sender", "recall_id"]
_NEW = [*_OLD, "original_id"]


def _table(kind: bool, unique: list[str]) -> sa.Table:
    """The table as it is before the change, given whole so that SQLite's copy needs no
    reflection (``cafgw ledger upgrade --sql`` writes the SQL without a database)."""
    table = sa.Table(
        "lifecycle_standing",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("sender", sa.String(length=3), nullable=False),
        *(
            [sa.Column("kind", sa.String(length=16), nullable=False, server_default="RECALL")]
            if kind
            else []
        ),
        sa.Column("original_id", sa.String(length=64), nullable=False),
        sa.Column("original_digest", sa.String(length=64), nullable=False),
        sa.Column("recall_id", sa.String(length=64), nullable=False),
        sa.Column("recall_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(*unique, name="uq_lifecycle_standing"),
    )
    sa.Index(
        "ix_lifecycle_standing_original", table.c.authority, table.c.sender, table.c.original_id
    )
    sa.Index("ix_lifecycle_standing_live", table.c.authority, table.c.at)
    return table


def upgrade() -> None:
    # In a batch: SQLite changes a table's constraints only by copying it (nothing
    # refers to this one); PostgreSQL alters it in place.
    with op.batch_alter_table("lifecycle_standing", copy_from=_table(False, _OLD)) as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="RECALL")
        )
        batch.drop_constraint("uq_lifecycle_standing", type_="unique")
        batch.create_unique_constraint("uq_lifecycle_standing", _NEW)


def downgrade() -> None:
    # What stood for an erasure would stand for a recall: it goes first.
    op.execute("DELETE FROM lifecycle_standing WHERE kind = 'ERASURE'")
    with op.batch_alter_table("lifecycle_standing", copy_from=_table(True, _NEW)) as batch:
        batch.drop_constraint("uq_lifecycle_standing", type_="unique")
        batch.create_unique_constraint("uq_lifecycle_standing", _OLD)
        batch.drop_column("kind")
