"""A schema upgrade in a short-lived child process: the gateway that then runs for
months never loads Alembic.

Alembic (with Mako and Pygments) holds 9-11 MB of a process's memory once
imported, and Python cannot unload a library. A ledger at the newest revision
is only read at start (``migrate.HEAD``); the first start on a new ledger, and
the first after a release with a new revision, upgrade it in a forked child
instead, which exits when done. The child takes the same schema lock as an
upgrade in the process would (``migrate.upgrade``), so replicas starting
together still upgrade one after the other.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy.engine import make_url

from gateway.errors import CafgwError, LedgerError
from gateway.ledger import migrate
from gateway.ledger.core import LedgerCore, make_engine


def upgrade_apart(url: str) -> bool:
    """Bring the ledger at ``url`` to the newest revision in a child process, unless it
    is there already; True when a child upgraded it.

    An in-memory SQLite ledger is left to the caller (a child could not see it).
    Raises ``LedgerError`` with the child's reason when the upgrade failed.
    """
    where = make_url(url)
    if where.get_backend_name() == "sqlite" and where.database in (None, "", ":memory:"):
        return False
    engine = make_engine(url, 1, 0)
    try:
        with engine.connect() as conn:
            if migrate.at_head(conn):
                return False
    finally:
        engine.dispose()
    return _in_child(url)


def _in_child(url: str) -> bool:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's clean-up
        os.close(read)
        os._exit(_upgrade(url, write))
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        why = pipe.read().decode("utf-8", errors="replace").strip()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        ended = f"exit code {code}" if code > 0 else f"signal {-code}"
        raise LedgerError(why or f"the ledger's schema upgrade process ended with {ended}")
    return True


def _upgrade(url: str, report: int) -> int:
    """The child's work; its exit code. Why it failed goes to ``report``."""
    code = 0
    try:
        engine = make_engine(url, 1, 0)
        try:
            LedgerCore(engine).upgrade_schema()
        finally:
            engine.dispose()
    except CafgwError as exc:
        os.write(report, str(exc).encode("utf-8"))
        code = 1
    except Exception as exc:  # said to the parent, which raises it
        os.write(report, f"cannot upgrade the ledger: {type(exc).__name__}: {exc}".encode())
        code = 2
    finally:
        os.close(report)
        sys.stdout.flush()
        sys.stderr.flush()
    return code
