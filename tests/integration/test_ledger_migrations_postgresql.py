"""The ledger's migrations on the real PostgreSQL (each test on a database of its own):
the code's tables and the newest revision agree, a ledger made by ``create_all``
before migrations is adopted with its rows, and a new revision is applied once
when several gateway processes start together on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from support.ledger_schema import (
    adopted_with_its_rows,
    bodies_moved_and_back,
    differences,
    migrations_with,
    standing_kept_across_0009,
)

from gateway.ledger import migrate
from gateway.ledger.core import make_engine
from gateway.ledger.store import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]

# A revision that takes a while (so that the starting processes overlap) and leaves
# a trace of each time it ran; its CREATE INDEX would fail if it ran twice.
SLOW_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "9000"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT pg_sleep(0.5)")
    op.create_index("ix_test_messages_reason", "messages", ["reason"])
    op.create_table("test_revision_runs", sa.Column("n", sa.Integer()))
    op.execute("INSERT INTO test_revision_runs (n) VALUES (1)")


def downgrade() -> None:
    op.drop_table("test_revision_runs")
    op.drop_index("ix_test_messages_reason", "messages")
"""

# One gateway process starting: connected, then upgrading its ledger once the test
# says go (so that all of them start on the ledger at the same moment).
START = """
import sys, time
from pathlib import Path
from gateway.ledger import migrate
from gateway.ledger.core import LedgerCore, make_engine
url, go, migrations = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ledger = LedgerCore(make_engine(url))
ledger.ping()
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
with ledger.transaction() as conn:
    done = migrate.upgrade(conn, migrations=migrations)
print(done.before, done.after, flush=True)
"""


def test_a_new_postgresql_ledger_at_the_newest_revision_has_exactly_the_tables_of_the_code(
    pg_url: str,
) -> None:
    ledger = Ledger.open(pg_url)
    try:
        assert ledger.schema_revision() == migrate.head()
        assert differences(ledger.engine) == []
    finally:
        ledger.engine.dispose()


def test_a_postgresql_ledger_created_before_migrations_is_adopted_with_its_rows(
    pg_url: str,
) -> None:
    adopted_with_its_rows(pg_url, with_issue_14_indexes=False).engine.dispose()


def test_the_bodies_revision_moves_each_body_to_its_own_table_and_back_on_postgresql(
    pg_url: str,
) -> None:
    bodies_moved_and_back(pg_url)


def test_the_standing_erasure_revision_keeps_what_stands_on_postgresql(pg_url: str) -> None:
    standing_kept_across_0009(pg_url)


def test_a_new_revision_is_applied_once_when_four_processes_start_together(
    tmp_path: Path, pg_url: str
) -> None:
    ledger = Ledger.open(pg_url)
    ledger.engine.dispose()
    migrations = migrations_with(tmp_path, SLOW_REVISION.format(head=migrate.head()))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START, pg_url, str(go), str(migrations)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    upgrades = sorted(out.strip() for out, _ in results)
    assert upgrades == [f"{migrate.head()} 9000"] + ["9000 9000"] * 3

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM test_revision_runs")).scalar() == 1
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                ("9000",)
            ]
    finally:
        engine.dispose()
