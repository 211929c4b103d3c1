"""The ledger's schema by migrations: brought to the newest revision under the schema lock.

The revisions (Alembic, ``gateway/ledger/migrations/versions/``) are the
schema's history; the SQLAlchemy tables (``tables.py`` and each feature's)
are what the code reads and writes, and a test keeps the two equal. Every
gateway's ledger has one schema, whichever features it runs: the revisions
create every standard feature's tables.

On PostgreSQL the upgrade runs in one transaction that first takes the
schema's advisory lock (``locks.SCHEMA``): replicas starting together on a
fresh or older ledger upgrade it one after the other, the later ones finding
it done. A ledger created before migrations (by ``create_all``, without the
version table) is adopted: the first revision creates only what is missing,
so its rows stay as they were.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, String, column, inspect, select, table

from gateway.errors import LedgerError
from gateway.ledger import locks

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in MIGRATIONS, known without loading Alembic: a ledger
# already there (every start but the first of a release) is then only read
# with one SELECT, and Alembic (with Mako and Pygments, ~11 MB of a gateway
# process's memory) is never imported. tests/unit/test_ledger_migrations.py
# checks it against Alembic's own head: bump it with each new revision.
HEAD = "0013"
# Where Alembic keeps the revision a ledger is at (its default name).
VERSION_TABLE = "alembic_version"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade found and left: revisions before and after (None: none yet)."""

    before: str | None
    after: str | None
    # The ledger had tables but no revision: made by ``create_all`` before migrations.
    adopted: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(
    migrations: Path, *, url: str | None = None, out: io.StringIO | None = None
) -> Config:
    """Alembic's configuration, built here: no ini file to ship or find."""
    from alembic.config import Config  # noqa: PLC0415 (loaded only to migrate: see HEAD)

    config = Config(output_buffer=out)
    config.set_main_option("script_location", str(migrations))
    # Revisions are numbered (``--rev-id``) and named for mypy: v0001_what_it_does.py
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head(migrations: Path = MIGRATIONS) -> str | None:
    """The newest revision in ``migrations``."""
    return _script(migrations).get_current_head()


def current(conn: Connection) -> str | None:
    """The revision the ledger on ``conn`` is at (None: not migrated yet)."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 (see HEAD)

    return MigrationContext.configure(conn).get_current_revision()


def at_head(conn: Connection) -> bool:
    """True when the ledger on ``conn`` is at the newest revision, read without Alembic."""
    return _at_head(conn, MIGRATIONS)


def _at_head(conn: Connection, migrations: Path) -> bool:
    """True when the ledger on ``conn`` is at ``HEAD`` already, read without Alembic.

    Two reads: whether Alembic's version table exists (a new ledger, or one
    made before migrations, has none) and what it holds.
    """
    if migrations != MIGRATIONS:
        return False  # another set of revisions (tests): Alembic decides
    if not inspect(conn).has_table(VERSION_TABLE):
        return False
    version = column("version_num", String)
    found = conn.scalars(select(version).select_from(table(VERSION_TABLE))).all()
    return list(found) == [HEAD]


def upgrade(conn: Connection, to: str = "head", migrations: Path = MIGRATIONS) -> Upgrade:
    """Bring the ledger on ``conn`` to revision ``to``, in ``conn``'s transaction (call
    it first in that transaction).

    A ledger already there is only read. Otherwise the schema is locked until
    the transaction ends (``_lock``): a concurrent upgrade waits, then finds
    nothing to do.
    """
    if to == "head" and _at_head(conn, migrations):
        return Upgrade(HEAD, HEAD)  # every start but the first of a release
    _lock(conn)
    before = current(conn)
    if to == "head" and before is not None and before == head(migrations):
        return Upgrade(before, before)  # another process upgraded it while we waited
    adopted = before is None and inspect(conn).has_table("messages")
    from alembic.util.exc import CommandError  # noqa: PLC0415 (see HEAD)

    try:
        _run(conn, to, migrations)
    except CommandError as exc:
        raise LedgerError(
            _unknown(before, migrations) or f"cannot upgrade the ledger: {exc}"
        ) from exc
    done = Upgrade(before, current(conn), adopted)
    # Changing a ledger that holds data is said at the default level (WARNING), so
    # that the log of every upgrade says when it happened; making a new one is not.
    if adopted:
        log.warning("ledger created before migrations adopted at schema revision %s", done.after)
    elif before is not None and done.changed:
        log.warning("ledger schema upgraded from revision %s to %s", before, done.after)
    elif done.changed:
        log.info("new ledger created at schema revision %s", done.after)
    return done


def _lock(conn: Connection) -> None:
    """Hold the schema until ``conn``'s transaction ends.

    PostgreSQL: the schema's advisory lock (``locks.SCHEMA``). SQLite: its one
    write lock, taken now (``BEGIN IMMEDIATE``) rather than at the first write,
    so that the upgrade's DDL runs in one transaction (one commit, all or
    nothing; the driver would otherwise commit each statement on its own) and
    two processes opening a new ledger file at once take turns.
    """
    if conn.dialect.name != "sqlite":
        locks.xact_lock(conn, [locks.SCHEMA])
        return
    driver = conn.connection.dbapi_connection
    if driver is not None and not getattr(driver, "in_transaction", True):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@functools.cache
def _script(migrations: Path) -> ScriptDirectory:
    """The revisions in ``migrations``, loaded once per process (each is code to compile)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 (see HEAD)

    return ScriptDirectory.from_config(alembic_config(migrations))


def _run(conn: Connection, to: str, migrations: Path) -> None:
    """Alembic's ``upgrade`` command on ``conn``, with the revisions loaded once."""
    from alembic.runtime.environment import EnvironmentContext  # noqa: PLC0415 (see HEAD)

    script = _script(migrations)
    config = alembic_config(migrations)
    config.attributes["connection"] = conn

    def steps(revision: Any, _context: MigrationContext) -> Any:
        return script._upgrade_revs(to, revision)

    with EnvironmentContext(config, script, fn=steps, destination_rev=to):
        script.run_env()


def _unknown(revision: str | None, migrations: Path) -> str | None:
    """Why a ledger at ``revision`` cannot be upgraded by this version, if it is newer."""
    if revision is None or revision in revisions(migrations):
        return None
    return (
        f"the ledger is at schema revision {revision}, which this version of cafgw does not "
        f"know (its newest is {head(migrations)}): a newer version upgraded it; run that one"
    )


def upgrade_sql(
    url: str, start: str | None, to: str = "head", migrations: Path = MIGRATIONS
) -> str:
    """The SQL that would bring a ledger at revision ``start`` (None: none) on ``url``'s
    kind of database to ``to``, for an administrator to read or run by hand."""
    from alembic import command  # noqa: PLC0415 (see HEAD)
    from alembic.util.exc import CommandError  # noqa: PLC0415

    out = io.StringIO()
    config = alembic_config(migrations, url=url, out=out)
    try:
        command.upgrade(config, f"{start}:{to}" if start else to, sql=True)
    except CommandError as exc:
        raise LedgerError(_unknown(start, migrations) or f"no upgrade SQL: {exc}") from exc
    return out.getvalue()


def missing_tables(conn: Connection, schemas: Iterable[MetaData]) -> list[str]:
    """Tables of ``schemas`` that the ledger on ``conn`` does not have: a feature
    declaring a table that no revision creates."""
    wanted = sorted({name for schema in schemas for name in schema.tables})
    if not wanted:
        return []
    present = set(inspect(conn).get_table_names())
    return [name for name in wanted if name not in present]


def revisions(migrations: Path = MIGRATIONS) -> tuple[str, ...]:
    """Every revision in ``migrations``, oldest first."""
    return tuple(r.revision for r in reversed(list(_script(migrations).walk_revisions())))
