"""Alembic's environment for the ledger: run by ``gateway.ledger.migrate``, never by an ini file.

Online, the caller hands over its connection (``config.attributes["connection"]``),
inside a transaction that holds the schema lock; the revisions then run in that
transaction. Offline (``cafgw ledger upgrade --sql``) the SQL is written out,
on PostgreSQL after taking the same lock, so a script run by hand cannot race
a starting gateway either. ``config.attributes["target_metadata"]`` is only
given when a developer autogenerates a revision (``scripts/schema-revision.py``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from gateway.ledger import locks

config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("offline migrations need sqlalchemy.url")
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        target_metadata=config.attributes.get("target_metadata"),
        # SQLite alters a table by copying it: revisions made for it use batch mode.
        render_as_batch=dialect == "sqlite",
    )
    with context.begin_transaction():
        if dialect == "postgresql":
            context.execute(text(f"SELECT pg_advisory_xact_lock({locks.key(locks.SCHEMA)})"))
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        # Normally already held by the caller (locks are re-entrant): whoever runs
        # the revisions holds the schema lock until their transaction commits.
        locks.xact_lock(connection, [locks.SCHEMA])
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    given = config.attributes.get("connection")
    if not isinstance(given, Connection):
        raise RuntimeError("run the ledger's migrations through gateway.ledger.migrate")
    run_online(given)
