"""SQLite takes one gateway process: a second is refused at start, saying what to do,
and a killed first one leaves no stale lock behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.ledger.single import hold_sqlite, lock_path

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from gateway.ledger.single import hold_sqlite
held = hold_sqlite(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_gateway_on_one_sqlite_ledger_is_refused_until_the_first_is_killed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'ledger.db'}"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as refused:
            hold_sqlite(url)
        message = str(refused.value)
        assert f"pid {first.pid}" in message
        assert "PostgreSQL" in message and str(tmp_path / "var" / "ledger.db") in message
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    # Killed: the kernel dropped its lock; this process may run now, and only it.
    held = hold_sqlite(url)
    assert held is not None and lock_path(url) == held.path
    with pytest.raises(ConfigError):
        hold_sqlite(url)
    held.release()
    again = hold_sqlite(url)
    assert again is not None
    again.release()


def test_postgresql_and_in_memory_ledgers_take_no_lock() -> None:
    assert hold_sqlite("postgresql+psycopg://127.0.0.1:5432/ledger") is None
    assert hold_sqlite("sqlite:///:memory:") is None
