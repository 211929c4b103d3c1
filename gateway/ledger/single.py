"""SQLite takes one gateway process: a second one on the same ledger file is refused.

Replicas of a gateway need a PostgreSQL ledger (row claims, advisory locks,
``gateway.ledger.jobs``). On SQLite a second ``cafgw run`` against the same
file would contend for its one write lock and race the first. So a running
gateway holds an exclusive lock (``flock``) on ``<ledger>.gateway.lock`` next
to the database file for as long as it runs; the kernel drops it when the
process ends, however it ends, so a killed gateway leaves nothing stale.
One-shot commands (``cafgw send``, ``cafgw messages``, ...) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError


@dataclass
class SqliteLock:
    """The held lock; ``release`` (or the process's end) lets another gateway start."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def lock_path(url: str) -> Path | None:
    """The lock file of an SQLite ledger file at ``url`` (None: not a file ledger)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    database = Path(url[len("sqlite:///") :].split("?", 1)[0])
    return database.with_name(database.name + ".gateway.lock")


def hold_sqlite(url: str) -> SqliteLock | None:
    """Take the SQLite ledger's gateway lock, or refuse with what to do (ConfigError).

    None for a PostgreSQL ledger: there replicas are welcome.
    """
    path = lock_path(url)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"another gateway process (pid {other}) is already running on the SQLite ledger "
            f"{path.with_name(path.name.removesuffix('.gateway.lock'))} (it holds {path}). "
            "SQLite takes one gateway process: stop the other one, or run replicas on a "
            "PostgreSQL ledger (database.url: postgresql+psycopg://...); see docs/performance.md"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return SqliteLock(path, fd)
