"""Write the next revision of the ledger's schema: what the tables in the code have that
the migrations' newest revision does not (Alembic's autogenerate).

    .venv/bin/python scripts/schema_revision.py "what the change is for"

Compares a fresh SQLite ledger migrated to the newest revision with every
table of ``gateway.features.schema()``, and writes
``gateway/ledger/migrations/versions/vNNNN_<message>.py``. Read it, fix what
autogenerate cannot know (a rename is a drop and an add to it; a new NOT NULL
column on a table with rows needs a server default or a data step), and run
tests/unit/test_ledger_migrations.py. docs/architecture.md, "Changing the schema".
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

# This checkout's gateway (and its migrations folder), whichever one the venv installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.features import schema
from gateway.ledger import migrate


def main(message: str) -> None:
    number = len(migrate.revisions()) + 1
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'ledger.db'}")
        try:
            with engine.begin() as conn:
                migrate.upgrade(conn)
                config = migrate.alembic_config(migrate.MIGRATIONS)
                config.attributes["connection"] = conn
                config.attributes["target_metadata"] = list(schema())
                script = command.revision(
                    config, message=message, autogenerate=True, rev_id=f"{number:04d}"
                )
        finally:
            engine.dispose()
    paths = [s.path for s in (script if isinstance(script, list) else [script]) if s is not None]
    print("\n".join(paths))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
