"""A long-running gateway upgrades its ledger's schema in a child process (``ledger.apart``).

The child does the upgrade, under the same schema lock; the parent only reads
the revision, and raises the child's reason when it failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.errors import LedgerError
from gateway.ledger import migrate
from gateway.ledger.apart import upgrade_apart
from gateway.ledger.core import LedgerCore, make_engine


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return LedgerCore(engine).schema_revision()
    finally:
        engine.dispose()


def test_a_new_ledger_is_brought_to_the_newest_revision_by_a_child(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    assert upgrade_apart(url) is True

    assert _revision(url) == migrate.HEAD


def test_a_ledger_at_the_newest_revision_is_only_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade_apart(url)

    assert upgrade_apart(url) is False
    assert _revision(url) == migrate.HEAD


def test_the_childs_reason_for_refusing_a_newer_ledger_is_raised_in_the_parent(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade_apart(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(LedgerError, match=r"schema revision 9999, which this version .* not know"):
        upgrade_apart(url)

    assert _revision(url) == "9999"  # left as it was


def test_an_in_memory_ledger_is_left_to_the_process_that_holds_it() -> None:
    assert upgrade_apart("sqlite://") is False
    assert upgrade_apart("sqlite:///:memory:") is False
