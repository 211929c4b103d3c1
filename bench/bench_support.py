"""What the bench's measurements share: a vhost and a PostgreSQL database of their own,
peak RSS of a process."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbit_vhost(prefix: str = "cafgw-bench") -> Iterator[str]:
    """A fresh vhost on the local broker (guest has every right); its AMQP URL. Deleted after."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def self_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb(pid: int | str = "self") -> float:
    """Resident set now (VmRSS) of process ``pid``, or NaN once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """The highest resident set of this process while the ``with`` block runs.

    A process's lifetime peak (``ru_maxrss``) also counts what it held before
    the block; sampled every ``every_s`` seconds, this is the block's own peak
    (a spike shorter than that may be missed).
    """

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s = every_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def proc_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PG_ADMIN_URL = os.environ.get("CAFGW_BENCH_PG", "postgresql://127.0.0.1:5432/test")


@contextmanager
def pg_database(prefix: str = "cafgw_bench") -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database on the local server: (its name, its SQLAlchemy URL).

    Created from ``CAFGW_BENCH_PG`` (the machine's server, database ``test``, by
    default) and dropped afterwards, whoever is still connected to it.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        info = admin.info
        host = "127.0.0.1" if info.host.startswith("/") else info.host
        try:
            yield name, f"postgresql+psycopg://{host}:{info.port}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def pg_commits(name: str) -> int:
    """Transactions the server has ended in database ``name`` (committed + rolled back)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


def pg_backend_pids(name: str) -> list[int]:
    """Server processes serving connections to database ``name``."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchall()
    return [int(r[0]) for r in rows]
