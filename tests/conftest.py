"""Shared fixtures: isolated RabbitMQ vhosts, ledgers on SQLite or PostgreSQL,
and throw-away key directories. Every integration test gets its own vhost
and its own database, and cleans them up."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from broker_admin import create_vhost, delete_vhost

from gateway.ledger.store import Ledger

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CONFIG = ROOT / "config"
PG_ADMIN_URL = os.environ.get("CAFGW_TEST_PG", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost with guest allowed; yields its amqp URL."""
    name = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        delete_vhost(name)


def _pg_database(options: str = "") -> Iterator[str]:
    name = f"cafgw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" {options}'.rstrip())  # type: ignore[arg-type]
    try:
        yield f"postgresql+psycopg://127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server; dropped afterwards."""
    yield from _pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    elif request.param == "postgresql-en-GB":  # a linguistic collation, as many servers have
        yield from _pg_database(
            "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-GB' LOCALE 'C.UTF-8'"
        )
    else:
        yield from _pg_database()


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A ``Ledger`` on ``ledger_url`` (``support.databases.on_both``)."""
    found = Ledger.open(ledger_url)
    try:
        yield found
    finally:
        found.engine.dispose()
