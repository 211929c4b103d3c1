"""Standing recalls read by when they came, not by the date their sender signed.

Since recalls stand at once (not only after their retries), a sender could date
its recalls just inside the created-at window, so that each stopped counting
against the caps within seconds; liveness is now judged by ``at``, the time
the recall came here, and the batch's look for standing recalls reads the
senders that have one by (authority, at).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 21:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_lifecycle_standing_live", table_name="lifecycle_standing")
    op.create_index("ix_lifecycle_standing_live", "lifecycle_standing", ["authority", "at"])


def downgrade() -> None:
    op.drop_index("ix_lifecycle_standing_live", table_name="lifecycle_standing")
    op.create_index(
        "ix_lifecycle_standing_live", "lifecycle_standing", ["authority", "recall_created_at"]
    )
