"""A PostgreSQL server of a test's own, for tests that stop and restart the database.

The machine's PostgreSQL (5432) is shared by every test, so a test that must
take a database down starts this one: ``initdb`` and ``pg_ctl`` from
``/usr/lib/postgresql/<version>/bin``, a data directory of its own in /tmp,
listening on 127.0.0.1 at a port of its own and on no Unix socket, trusting
local TCP logins. PostgreSQL refuses to run as root, so when the tests run as
root the server runs as the ``postgres`` user, which then owns the data
directory (outside pytest's root-only temporary tree).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.integration.private_broker import pick_ports

START_TIMEOUT_S = 60


class PrivatePostgresError(RuntimeError):
    """initdb or pg_ctl failed; the message carries its output and the server log's tail."""


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise PrivatePostgresError("no pg_ctl under /usr/lib/postgresql/*/bin")
    return found[-1].parent


class PrivatePostgres:
    """A throw-away PostgreSQL server; ``start()`` it, ``close()`` it."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="cafgw-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        (self.port,) = pick_ports(1)
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nfsync = off\n"
            )

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy URL."""
        dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        """Start the server and return once it takes connections."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t",
            str(START_TIMEOUT_S), "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast: connections are cut, as in a restart by an operator)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        """Stop the server if it runs (immediately) and delete its data."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / program), *args],
            user=self._user,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT_S + 30,
        )
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PrivatePostgresError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[:2000]}\n{tail}"
            )

