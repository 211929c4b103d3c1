"""``cafgw audit``: check and read the hash-chained audit log and the heads peers hold."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, console, err_console, friendly, settings_from
from gateway.errors import ConfigError
from gateway.ledger import audit, audit_anchor, audit_key
from gateway.ledger.store import Ledger
from gateway.private_files import write_private

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
    peer_heads: list[Path] = typer.Option(
        [],
        "--peer-heads",
        help="a peer's `cafgw audit heads` export: this chain must contain every head in it",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Recompute the chain and check it against the heads peers hold; exit 1 and list
    every altered, inserted or deleted entry and every head a peer holds that is gone."""
    settings = settings_from(config)
    exported = [a for p in peer_heads for a in audit_anchor.read_export(p, settings.hosted)]
    ledger = _ledger(config)
    try:
        problems = audit.verify(
            ledger, _anchor(expect_head) if expect_head else None, peer_heads=exported
        )
        current = audit.head(ledger)
        held = len(audit_anchor.anchors(ledger)) + len(exported)
    finally:
        ledger.engine.dispose()
    for problem in problems:
        err_console.print(problem, highlight=False, markup=False)
    if problems:
        err_console.print(f"audit log: {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(1)
    count = current[0] if current else 0
    anchored = f"; contains all {held} heads peers hold" if held else ""
    console.print(f"audit log intact: {count} entries{anchored}", highlight=False)


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


@audit_app.command("heads")
@friendly
def show_peer_heads(
    peer: str | None = typer.Option(None, "--peer", help="only the heads this LA reported"),
    out: Path | None = typer.Option(None, "--out", help="write them to this file (0600)"),
    config: Path | None = ConfigOption,
) -> None:
    """Print the audit heads peers reported in their receipts, as JSON lines: give
    them to the peer's auditor for `cafgw audit verify --peer-heads FILE` there."""
    ledger = _ledger(config)
    try:
        rows = audit_anchor.peer_heads(ledger, peer)
    finally:
        ledger.engine.dispose()
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_private(out, text)
    console.print(f"{len(rows)} heads written to {out}", highlight=False)
