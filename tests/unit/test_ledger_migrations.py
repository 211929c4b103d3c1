"""The ledger's schema comes from migrations (SQLite here; PostgreSQL in
tests/integration/test_ledger_migrations_postgresql.py): the code's tables and
the newest revision agree, a ledger made by ``create_all`` before migrations is
adopted with its rows, and what cannot be upgraded is refused by name."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, inspect, text
from support.ledger_schema import (
    adopted_with_its_rows,
    bodies_moved_and_back,
    create_before_migrations,
    differences,
    migrations_with,
    standing_kept_across_0009,
)
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import LedgerError
from gateway.ledger import migrate
from gateway.ledger.core import LedgerCore, make_engine
from gateway.ledger.store import Ledger

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

NEW_INDEX = """
from alembic import op

revision = "9000"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_test_messages_reason", "messages", ["reason"])


def downgrade() -> None:
    op.drop_index("ix_test_messages_reason", "messages")
"""


def test_a_new_ledger_migrated_to_the_newest_revision_has_exactly_the_tables_of_the_code(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        assert ledger.schema_revision() == migrate.head()
        assert differences(ledger.engine) == []
    finally:
        ledger.engine.dispose()


@pytest.mark.parametrize("with_issue_14_indexes", [True, False], ids=["indexed", "before-14"])
def test_a_ledger_created_before_migrations_is_adopted_with_its_rows_as_they_were(
    tmp_path: Path, with_issue_14_indexes: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = adopted_with_its_rows(url, with_issue_14_indexes=with_issue_14_indexes)
    try:
        assert len(ledger.find(authority="332", limit=10)) == 4
    finally:
        ledger.engine.dispose()


def test_upgrading_logs_the_adoption_once_and_then_finds_nothing_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_before_migrations(engine)
    ledger = LedgerCore(engine)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.ledger.migrate"):
            first = ledger.upgrade_schema()
            again = ledger.upgrade_schema()
    finally:
        engine.dispose()
    assert (first.before, first.after, first.adopted) == (None, migrate.head(), True)
    assert (again.before, again.after, again.changed) == (migrate.head(), migrate.head(), False)
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.ledger.migrate"] == [
        f"ledger created before migrations adopted at schema revision {migrate.head()}"
    ]


def test_a_new_revision_applies_on_a_ledger_at_the_old_head_and_once_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).engine.dispose()
    migrations = migrations_with(tmp_path, NEW_INDEX.format(head=migrate.head()))
    engine = make_engine(url)
    try:
        runs = []
        for _ in range(2):
            with engine.begin() as conn:
                runs.append(migrate.upgrade(conn, migrations=migrations))
        indexes = {i["name"] for i in inspect(engine).get_indexes("messages")}
    finally:
        engine.dispose()
    assert [(r.before, r.after) for r in runs] == [(migrate.head(), "9000"), ("9000", "9000")]
    assert "ix_test_messages_reason" in indexes


def test_a_revision_that_fails_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).engine.dispose()
    failing = NEW_INDEX.replace(
        'op.create_index("ix_test_messages_reason", "messages", ["reason"])',
        'op.create_index("ix_test_messages_reason", "messages", ["reason"])\n'
        '    op.execute("SELECT no_such_column FROM messages")',
    )
    migrations = migrations_with(tmp_path, failing.format(head=migrate.head()))
    ledger = LedgerCore(make_engine(url))
    try:
        with pytest.raises(LedgerError, match="no_such_column"), ledger.transaction() as conn:
            migrate.upgrade(conn, migrations=migrations)
        indexes = {i["name"] for i in inspect(ledger.engine).get_indexes("messages")}
        assert ledger.schema_revision() == migrate.head()
    finally:
        ledger.engine.dispose()
    assert "ix_test_messages_reason" not in indexes


def test_a_ledger_upgraded_by_a_newer_version_is_refused_naming_its_revision(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    ledger.engine.dispose()
    with pytest.raises(LedgerError, match="revision 9999, which this version of cafgw does not"):
        Ledger.open(url)


def test_a_feature_declaring_a_table_no_revision_creates_is_refused_at_start(
    tmp_path: Path,
) -> None:
    unmigrated = MetaData()
    Table("not_migrated", unmigrated, Column("id", Integer, primary_key=True))
    with pytest.raises(LedgerError, match=r"no table not_migrated .* needs a revision"):
        Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", schemas=[unmigrated])


def test_cafgw_ledger_current_and_upgrade_show_and_move_the_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAFGW_DATABASE__URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    config = ["--config", str(ROOT / "config")]
    head = migrate.head()

    before = runner.invoke(app, ["ledger", "current", *config])
    assert (before.exit_code, "never migrated" in before.output) == (1, True), before.output
    sql = runner.invoke(app, ["ledger", "upgrade", "--sql", *config])
    assert sql.exit_code == 0, sql.output
    assert "CREATE TABLE IF NOT EXISTS messages" in sql.output
    assert runner.invoke(app, ["ledger", "current", *config]).exit_code == 1  # --sql ran nothing

    upgraded = runner.invoke(app, ["ledger", "upgrade", *config])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"none -> {head}" in upgraded.output
    after = runner.invoke(app, ["ledger", "current", *config])
    assert (after.exit_code, f"schema revision {head} (the newest)") == (
        0,
        after.output.strip(),
    )
    nothing = runner.invoke(app, ["ledger", "upgrade", "--sql", *config])
    assert "nothing to run" in nothing.output


def test_the_head_known_without_alembic_is_alembics_newest_revision() -> None:
    # A new revision must bump migrate.HEAD, or every start would run Alembic.
    assert migrate.head() == migrate.HEAD


STARTS_WITHOUT_ALEMBIC = """
import sys
from gateway.ledger.core import LedgerCore, make_engine
engine = make_engine(sys.argv[1])
done = LedgerCore(engine).upgrade_schema()
engine.dispose()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako", "pygments"))
print(done.before, done.after, loaded)
"""


def test_a_start_on_a_ledger_at_the_newest_revision_reads_it_without_loading_alembic(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    LedgerCore(engine).upgrade_schema()  # a new ledger: Alembic creates it
    engine.dispose()

    again = subprocess.run(
        [sys.executable, "-c", STARTS_WITHOUT_ALEMBIC, url],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )

    assert again.stdout.split() == [migrate.HEAD, migrate.HEAD, "[]"]


def test_the_bodies_revision_moves_each_body_to_its_own_table_and_back_on_a_downgrade(
    tmp_path: Path,
) -> None:
    bodies_moved_and_back(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_the_standing_erasure_revision_keeps_what_stands_and_lets_a_request_stand_for_two(
    tmp_path: Path,
) -> None:
    standing_kept_across_0009(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("DROP INDEX ix_messages_case_folded", "ix_messages_case_folded"),
        (
            "DROP INDEX ix_messages_case_folded; CREATE INDEX ix_messages_case_folded "
            "ON messages (direction, authority, lower(case_ref))",
            "ix_messages_case_folded",
        ),
        # PostgreSQL's only: made here too, an index every message would pay for.
        (
            "CREATE INDEX ix_messages_id_bytes ON messages (direction, authority, message_id)",
            "ix_messages_id_bytes",
        ),
        ("CREATE INDEX ix_messages_sender_folded ON messages (lower(sender))", "sender_folded"),
    ],
    ids=["missing", "another-expression", "postgresql-only", "not-in-the-code"],
)
def test_an_index_on_an_expression_made_otherwise_than_the_code_says_is_a_difference(
    tmp_path: Path, change: str, found: str
) -> None:
    # Alembic reads no index on an expression on SQLite and compares none on PostgreSQL:
    # the comparison of the migrated ledger with the code does it itself.
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with ledger.engine.begin() as conn:
            for statement in change.split("; "):
                conn.execute(text(statement))
        assert [d for d in differences(ledger.engine) if found in str(d)], differences(
            ledger.engine
        )
    finally:
        ledger.engine.dispose()
