"""Existence queries an authority asked, noted by the child they were about.

A query's ledger row has no child key (it carries keyed hashes, not the child's
identity, and a child key would send the child's identity to the asked authority
with a consent withdrawal). Before, an erasure of the child at the asking
authority did not reach the queries it had sent, nor did a subject access report
list them; now each is noted under the child keys it could be named by
(``gateway.crossborder.existence_asked``). Queries sent before this revision are
not noted: they go at their retention period.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "existence_asked",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_existence_asked_child", "existence_asked", ["authority", "child_key"])
    op.create_index("ix_existence_asked_message", "existence_asked", ["authority", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_existence_asked_message", table_name="existence_asked")
    op.drop_index("ix_existence_asked_child", table_name="existence_asked")
    op.drop_table("existence_asked")
