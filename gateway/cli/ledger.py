"""``cafgw ledger``: the ledger's schema revision, and upgrading it (or printing the SQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, console, friendly, settings_from
from gateway.ledger import migrate
from gateway.ledger.core import LedgerCore, make_engine

ledger_app = typer.Typer(
    help="The ledger's schema: which revision it is at, and upgrading it.", no_args_is_help=True
)


def _revision(url: str) -> str | None:
    ledger = LedgerCore(make_engine(url))
    try:
        return ledger.schema_revision()
    finally:
        ledger.engine.dispose()


@ledger_app.command("current")
@friendly
def current(config: Path | None = ConfigOption) -> None:
    """Print the ledger's schema revision and this version's newest; exit 1 unless they
    are the same (the gateway upgrades the ledger when it starts, or: cafgw ledger upgrade)."""
    found = _revision(settings_from(config).database.url)
    newest = migrate.head()
    if found == newest:
        console.print(f"schema revision {found} (the newest)", highlight=False)
        return
    if found is None:
        state = "none: the ledger was never migrated (created before migrations, or new)"
    elif found in migrate.revisions():
        state = f"{found}, behind this version's newest {newest}"
    else:
        state = f"{found}, unknown to this version (newest {newest}): a newer cafgw upgraded it"
    console.print(f"schema revision {state}", highlight=False)
    raise typer.Exit(1)


@ledger_app.command("upgrade")
@friendly
def upgrade(
    sql: bool = typer.Option(
        False, "--sql", help="print the SQL the upgrade would run instead of running it"
    ),
    start: str | None = typer.Option(
        None,
        "--from",
        help="with --sql: the revision to start from ('base': an empty database) instead of "
        "reading it from the ledger, which is then not connected to",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Bring the ledger's schema to this version's newest revision, under the schema lock
    (what every gateway does when it starts); with --sql print the SQL instead."""
    url = settings_from(config).database.url
    if sql:
        begin = _revision(url) if start is None else None if start == "base" else start
        if begin is not None and begin == migrate.head():
            sys.stdout.write(f"-- schema revision {begin} is the newest: nothing to run\n")
            return
        sys.stdout.write(migrate.upgrade_sql(url, begin))
        return
    if start is not None:
        raise typer.BadParameter("--from goes with --sql", param_hint="--from")
    ledger = LedgerCore(make_engine(url))
    try:
        done = ledger.upgrade_schema()
    finally:
        ledger.engine.dispose()
    if not done.changed:
        console.print(f"schema revision {done.after}: already the newest", highlight=False)
    elif done.adopted:
        console.print(
            f"ledger created before migrations: adopted, now at {done.after}", highlight=False
        )
    else:
        console.print(f"schema revision {done.before or 'none'} -> {done.after}", highlight=False)
