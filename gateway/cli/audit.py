"""``cafgw audit``: check and read the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, console, err_console, friendly, settings_from
from gateway.errors import ConfigError
from gateway.ledger import audit, audit_key
from gateway.ledger.store import Ledger

audit_app = typer.Typer(help="The append-only audit log of disclosures.", no_args_is_help=True)


def _ledger(config: Path | None) -> Ledger:
    settings = settings_from(config)
    return Ledger.open(settings.database.url, audit_key=audit_key.load(settings.keys_dir))


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ConfigError(f"--expect-head {text!r}: expected SEQ:SHA256HEX from cafgw audit head")
    return int(seq), digest


@audit_app.command("verify")
@friendly
def verify(
    expect_head: str | None = typer.Option(
        None, "--expect-head", help="SEQ:HASH recorded earlier by `cafgw audit head`"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Recompute the chain; exit 1 and list every altered, inserted or deleted entry."""
    ledger = _ledger(config)
    try:
        problems = audit.verify(ledger, _anchor(expect_head) if expect_head else None)
        current = audit.head(ledger)
    finally:
        ledger.engine.dispose()
    for problem in problems:
        err_console.print(problem, highlight=False, markup=False)
    if problems:
        err_console.print(f"audit log: {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(1)
    count = current[0] if current else 0
    console.print(f"audit log intact: {count} entries", highlight=False)


@audit_app.command("head")
@friendly
def show_head(config: Path | None = ConfigOption) -> None:
    """Print SEQ:HASH of the newest entry; keep it elsewhere to detect truncation."""
    ledger = _ledger(config)
    try:
        current = audit.head(ledger)
    finally:
        ledger.engine.dispose()
    typer.echo("0:" + audit.GENESIS if current is None else f"{current[0]}:{current[1]}")
