"""Standing recalls: a recall that came before its original.

Before, such a recall waited through its retries and was then refused ("not
received after N retries"), and an original that came later (parked by the
recipient's broker, then replayed) was handed to the local system although
its sender had recalled it. Now the recall stands, and the original is
withdrawn on arrival (``gateway.lifecycle.receiver.on_arrival``). (This
revision was first written for a recall standing only on its last retry;
since 0006 it stands at once.)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lifecycle_standing",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority", sa.String(length=3), nullable=False),
        sa.Column("sender", sa.String(length=3), nullable=False),
        sa.Column("original_id", sa.String(length=64), nullable=False),
        sa.Column("original_digest", sa.String(length=64), nullable=False),
        sa.Column("recall_id", sa.String(length=64), nullable=False),
        sa.Column("recall_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("authority", "sender", "recall_id", name="uq_lifecycle_standing"),
    )
    op.create_index(
        "ix_lifecycle_standing_original",
        "lifecycle_standing",
        ["authority", "sender", "original_id"],
    )
    op.create_index(
        "ix_lifecycle_standing_live", "lifecycle_standing", ["authority", "recall_created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_lifecycle_standing_live", table_name="lifecycle_standing")
    op.drop_index("ix_lifecycle_standing_original", table_name="lifecycle_standing")
    op.drop_table("lifecycle_standing")
