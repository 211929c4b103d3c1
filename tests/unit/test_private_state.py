"""The gateway's state on disk is owner-only, and `cafgw run` prints no secret or
personal data (issue 13 item 7)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from gateway.api.auth import ApiKeys
from gateway.cli.reports import safe_reasons
from gateway.ledger import audit_key
from gateway.ledger.store import Ledger
from gateway.policy import existence
from gateway.runtime import secure_state
from gateway.settings import load_settings
from tests.policy_support import DUDLEY, memory_gateway, submit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The usual umask: files 0644 and directories 0755 unless the code says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_ledger_and_its_wal_and_shm_are_created_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    ledger = Ledger.open(f"sqlite:///{folder / 'ledger.db'}")
    try:
        with ledger.transaction() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
        files = sorted(p.name for p in folder.iterdir())
        assert files == ["ledger.db", "ledger.db-shm", "ledger.db-wal"]
        assert {name: _mode(folder / name) for name in files} == dict.fromkeys(files, 0o600)
        assert _mode(folder) == 0o700
    finally:
        ledger.engine.dispose()


def test_a_ledger_left_readable_by_an_older_version_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(f"sqlite:///{path}").engine.dispose()
    for name in ("ledger.db", "ledger.db-wal"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)
    Ledger.open(f"sqlite:///{path}").engine.dispose()
    assert _mode(path) == 0o600


def test_keys_and_credentials_files_are_created_0600(tmp_path: Path) -> None:
    ApiKeys(tmp_path / "var" / "api-keys.json").issue("336", holder="Jo", holder_role="x")
    audit_key.ensure(tmp_path / "var" / "keys")
    existence.create_key(tmp_path / "var" / "secrets" / "existence.key")
    for path in (
        tmp_path / "var" / "api-keys.json",
        tmp_path / "var" / "keys" / "audit-chain.key",
        tmp_path / "var" / "secrets" / "existence.key",
    ):
        assert _mode(path) == 0o600, path
    for folder in (tmp_path / "var", tmp_path / "var" / "keys", tmp_path / "var" / "secrets"):
        assert _mode(folder) == 0o700, folder


def test_starting_the_gateway_tightens_state_left_world_readable(tmp_path: Path) -> None:
    var = tmp_path / "var"
    (var / "keys" / "332").mkdir(parents=True)
    for name in ("ledger.db", "ledger.db-wal", "api-keys.json", "demo-credentials.json"):
        (var / name).write_text("x")
    (var / "keys" / "332" / "cert.pem").write_text("x")
    settings = load_settings(
        ROOT / "config",
        env={},
        overrides={
            "keys_dir": str(var / "keys"),
            "api_keys_file": str(var / "api-keys.json"),
            "database": {"url": f"sqlite:///{var / 'ledger.db'}"},
        },
    )
    secure_state(settings)
    for path in [var, *var.rglob("*")]:
        assert _mode(path) & 0o077 == 0, path
    assert _mode(ROOT / "config") & 0o005, "the config directory is left as it is"


def test_the_demo_feed_names_the_columns_of_a_rejected_row_not_its_values(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    try:
        report = submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    finally:
        gw.ledger.engine.dispose()
    table = Table("row", "why")
    for outcome in report.outcomes:
        table.add_row(outcome.record, safe_reasons(outcome, DUDLEY.name))
    console = Console(record=True, width=300)
    console.print(table)
    shown = console.export_text()
    # the values of the sample's rejected row 5, which the problems quote
    for value in ("X332412014017", "99900000", "31/04/2014", "NOT A POSTCODE", "MAYBE"):
        assert value not in shown
    assert "problem(s) in UPN, NHS_NO, DOB" in shown
    assert "cafgw status" in shown
    assert "consent.not-given" in shown  # held records keep their (value-free) rule
