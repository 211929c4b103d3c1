"""What the bench's measurements share: a vhost and a PostgreSQL database of their own,
peak RSS of a process."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
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


def proc_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RowPeak:
    """The highest resident set of this process while the ``with`` block runs.

    The kernel's own peak (``VmHWM``, as ``proc_rss_mb`` reads for the receiver),
    reset as the block starts (``/proc/self/clear_refs``): the process's lifetime
    peak also counted what it held before the block. Where the peak cannot be
    reset, the lifetime peak.
    """

    peak_mb = float("nan")

    def __enter__(self) -> RowPeak:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.peak_mb = proc_rss_mb(os.getpid())


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
