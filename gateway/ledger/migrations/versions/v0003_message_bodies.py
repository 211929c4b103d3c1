"""Message bodies in a table of their own, written once and never rewritten.

SQLite rewrites a row whole when its size changes, as every status change
does (status, reason, attempts, claim); with the 5 KB signed body in the
``messages`` row, each change rewrote its overflow pages too (issue 14,
docs/performance.md). The bodies move to ``message_bodies``, one row per
message that has one; a message without a body (never had one, or erased)
has no row there.

Disk: on SQLite the upgrade writes every body again (to the new table, and
the log until the commit): about three times the file's size free while it
runs, and the old pages stay in the file as free pages until a ``VACUUM``.
On PostgreSQL the dropped column's values stay in the table's TOAST until
its rows are next written or ``VACUUM FULL messages`` (docs/deployment.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 22:00:00.000000
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

# DROP COLUMN on a table with an INTEGER PRIMARY KEY could leave the dropped
# column's values in another column before SQLite 3.35.5.
SQLITE_DROP_COLUMN = (3, 35, 5)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        if sqlite3.sqlite_version_info < SQLITE_DROP_COLUMN:
            raise RuntimeError(
                f"moving message bodies needs SQLite {'.'.join(map(str, SQLITE_DROP_COLUMN))} "
                f"or later (ALTER TABLE ... DROP COLUMN); this one is {sqlite3.sqlite_version}"
            )
        # The old bodies' pages are zeroed as they are freed, whoever runs this (the
        # gateway's connections do it anyway; ``sqlite3`` running ``--sql`` may not):
        # a body erased after the upgrade must leave no copy behind in the file.
        op.execute("PRAGMA secure_delete=ON")
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
