"""A gateway process loads no library it has no use for (issue 14: RSS < 150 MB).

Each of these costs megabytes of every gateway process when imported at
start, and is needed only for some configurations or some moments: Alembic
(with Mako and Pygments) to change the ledger's schema, ``holidays`` to date
a dispute stage, httpx for a webhook connector or the broker's management
API, psycopg for a PostgreSQL ledger. The start of a gateway on SQLite with a
ledger at the newest revision, its API and its worker built, loads none of
them (measured in a fresh interpreter); nor does the first start on a new
ledger, which is upgraded in a child process (``ledger.apart``).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.ledger import migrate
from gateway.ledger.core import (
    SQLITE_CACHE_KIB,
    SQLITE_CACHED_STATEMENTS,
    LedgerCore,
    make_engine,
)

ROOT = Path(__file__).resolve().parents[2]
NOT_AT_START = ("alembic", "mako", "pygments", "holidays", "httpx", "psycopg")

START = """
import sys
from pathlib import Path
import gateway.cli  # what `cafgw run` imports
from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import build
from gateway.settings import load_settings
from gateway.transport.memory import MemoryTransport
from gateway.worker import Worker

tmp = Path(sys.argv[1])
settings = load_settings(
    Path("config"),
    env={},
    overrides={
        "hosted": ["332", "336"],
        "keys_dir": str(tmp / "keys"),
        "database": {"url": f"sqlite:///{tmp / 'ledger.db'}"},
        "api_keys_file": str(tmp / "api-keys.json"),
    },
)
if sys.argv[2:] == ["new ledger"]:  # the first start: what `cafgw run` does first
    from gateway.ledger.apart import upgrade_apart

    assert upgrade_apart(settings.database.url)
gw = build(settings, MemoryTransport(), create_keys=True)
create_app(gw, ApiKeys(settings.api_keys_file))
Worker(gw, MemoryTransport())
gw.ledger.engine.dispose()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _fresh_interpreter(script: str, *args: str) -> str:
    """What ``script`` prints, run in a new interpreter (nothing imported yet)."""
    ran = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def _loaded_at_start(tmp_path: Path, *args: str) -> set[str]:
    """The top-level packages a gateway's start (``START``) loaded."""
    return set(_fresh_interpreter(START, str(tmp_path), *args).split())


def test_a_gateway_starting_on_an_up_to_date_ledger_loads_no_library_it_does_not_use(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    LedgerCore(engine).upgrade_schema()  # made before: the start only reads its revision
    engine.dispose()

    loaded = _loaded_at_start(tmp_path)

    assert "gateway" in loaded  # the start did run
    assert sorted(loaded.intersection(NOT_AT_START)) == []


def test_the_first_start_on_a_new_ledger_upgrades_it_in_a_child_and_loads_no_alembic(
    tmp_path: Path,
) -> None:
    loaded = _loaded_at_start(tmp_path, "new ledger")

    assert "gateway" in loaded
    assert sorted(loaded.intersection(NOT_AT_START)) == []
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        assert LedgerCore(engine).schema_revision() == migrate.HEAD
    finally:
        engine.dispose()


def test_each_sqlite_connection_keeps_a_small_page_cache(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with engine.connect() as conn:
            (size,) = conn.exec_driver_sql("PRAGMA cache_size").one()
    finally:
        engine.dispose()

    assert size == -SQLITE_CACHE_KIB  # negative: KiB, not pages
    assert SQLITE_CACHE_KIB < 2000  # below SQLite's default


def test_each_sqlite_connection_keeps_few_prepared_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sqlite3 module does not show a connection's statement cache: what the
    # ledger asks for when it opens a connection is what can be seen.
    asked: list[Any] = []
    connect = sqlite3.connect

    def opening(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        asked.append(kwargs.get("cached_statements"))
        return connect(*args, **kwargs)

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setattr(engine.dialect.loaded_dbapi, "connect", opening)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").one()
    finally:
        engine.dispose()

    assert asked == [SQLITE_CACHED_STATEMENTS]
    assert SQLITE_CACHED_STATEMENTS < 128  # below the sqlite3 module's default


SCRAPE = """
import base64, json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from gateway.ops.broker import RabbitProbe

class Management(BaseHTTPRequestHandler):
    def do_GET(self):
        assert self.path.startswith("/api/queues/region%2Fwest?columns="), self.path
        wanted = "Basic " + base64.b64encode(b"la336:s3cret/x").decode()
        assert self.headers["Authorization"] == wanted, self.headers["Authorization"]
        body = json.dumps([{"name": "caf.inbox.336", "messages_ready": 2,
                            "messages_unacknowledged": 1, "consumers": 1}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Management)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
probe = RabbitProbe(
    "amqp://la336:s3cret%2Fx@127.0.0.1:5672/region%2Fwest",
    ("caf.inbox.336", "caf.parking.336"),
    management_url=base,
)
stats = probe.queue_stats()
inbox = stats["caf.inbox.336"]
print(inbox.source, inbox.ready, inbox.unacknowledged, inbox.consumers, stats["caf.parking.336"])
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_reading_queue_figures_from_the_management_api_loads_no_http_client_library() -> None:
    figures, modules = _fresh_interpreter(SCRAPE).splitlines()
    assert figures == "management 2 1 1 None"
    assert sorted(set(modules.split()).intersection(NOT_AT_START)) == []
