"""Indexes for a search by the first characters of a case reference or a message id.

The message search (``ledger.search``: the dashboard's search box, the API's
``GET /v1/messages``) matched an id or a case reference by its beginning with
``LIKE``, which no index served: whenever fewer than a page matched (the id
found in a log line, one case's messages), every message of the authority was
read (issue 14). It now asks for a range (``ledger.prefix``):

- case references whatever the case of their ASCII letters, as ``LIKE`` matched
  them on SQLite: by their upper-case form, compared byte by byte (on PostgreSQL
  in the "C" collation, which its ``upper()`` also folds ASCII letters only in);
- message ids, which are lower-case UUIDs, on PostgreSQL only: SQLite compares
  text byte by byte in ``ix_messages_message_id`` already, PostgreSQL in the
  database's collation, where a range is not a prefix.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")  # offline too (--sql)


def upgrade() -> None:
    folded = 'upper((case_ref COLLATE "C"))' if _postgresql() else "upper(case_ref)"
    op.create_index(
        "ix_messages_case_folded", "messages", ["direction", "authority", sa.text(folded)]
    )
    if _postgresql():
        op.create_index(
            "ix_messages_id_bytes",
            "messages",
            ["direction", "authority", sa.text('(message_id COLLATE "C")')],
        )


def downgrade() -> None:
    if _postgresql():
        op.drop_index("ix_messages_id_bytes", table_name="messages")
    op.drop_index("ix_messages_case_folded", table_name="messages")
