"""``cafgw api-keys issue|list|revoke|rotate``: keys that name a person and expire."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table

from gateway.api.auth import DEFAULT_VALIDITY_DAYS, ApiKeys, IssuedKey
from gateway.cli.common import (
    ConfigOption,
    console,
    err_console,
    friendly,
    print_json,
    settings_from,
)

api_keys_app = typer.Typer(
    help="API keys for local systems and administrators: each names a person and expires.",
    no_args_is_help=True,
)


def _shown_once(issued: IssuedKey) -> None:
    record = issued.record
    err_console.print(
        f"key {record.key_id} for {record.holder} ({record.holder_role or 'no role'}), "
        f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC; shown once, stored only as a hash:",
        highlight=False,
    )
    typer.echo(issued.key)  # alone on stdout, so a script can capture it


@api_keys_app.command("issue")
@friendly
def issue(
    holder: str = typer.Option(..., "--holder", help="the person the key is for (name)"),
    role: str = typer.Option(
        ..., "--role", help="their role, e.g. 'CAF coordinator' or 'case system (service)'"
    ),
    authority: str | None = typer.Option(None, "--authority", help="LA code the key acts for"),
    admin: bool = typer.Option(False, "--admin", help="an administrator key"),
    days: float = typer.Option(
        DEFAULT_VALIDITY_DAYS, "--days", help="days until the key expires (at most 366)"
    ),
    rate: int | None = typer.Option(
        None, "--rate", help="requests per minute (default: api.rate_per_minute)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Issue an API key naming its holder; it is shown once and stored only as a hash."""
    settings = settings_from(config)
    if not admin:
        if authority is None:
            raise typer.BadParameter("give --authority CODE or --admin")
        settings.directory.get(authority)
    issued = ApiKeys(settings.api_keys_file).issue_key(
        None if admin else authority,
        "admin" if admin else "authority",
        holder=holder,
        holder_role=role,
        days=days,
        rate_per_minute=rate,
    )
    _shown_once(issued)


@api_keys_app.command("list")
@friendly
def listing(
    json: bool = typer.Option(False, "--json", help="machine-readable output"),
    config: Path | None = ConfigOption,
) -> None:
    """Every key: id, holder, role, authority, state and expiry (never the key itself)."""
    settings = settings_from(config)
    keys = ApiKeys(settings.api_keys_file)
    now = keys.clock()
    records = keys.records()
    if json:
        print_json(
            [
                {
                    "key_id": r.key_id,
                    "holder": r.holder,
                    "holder_role": r.holder_role,
                    "authority": r.authority,
                    "role": r.role,
                    "state": r.state(now),
                    "issued_at": r.issued_at,
                    "expires_at": r.expires_at,
                    "revoked_at": r.revoked_at,
                    "revoked_reason": r.revoked_reason,
                    "replaced_by": r.replaced_by,
                    "rate_per_minute": r.rate_per_minute,
                }
                for r in records
            ]
        )
        return
    table = Table("key id", "holder", "role", "acts for", "state", "expires")
    for r in records:
        table.add_row(
            r.key_id,
            r.holder,
            r.holder_role,
            "admin" if r.role == "admin" else (r.authority or "?"),
            r.state(now),
            f"{r.expires_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@api_keys_app.command("revoke")
@friendly
def revoke(
    key_id: str = typer.Argument(..., help="the key id (cafgw api-keys list)"),
    reason: str = typer.Option(..., "--reason", help="why, for the record"),
    config: Path | None = ConfigOption,
) -> None:
    """Revoke a key at once: its next request is refused (401)."""
    settings = settings_from(config)
    record = ApiKeys(settings.api_keys_file).revoke(key_id, reason)
    console.print(f"revoked key {record.key_id} of {record.holder}", highlight=False)


@api_keys_app.command("rotate")
@friendly
def rotate(
    key_id: str = typer.Argument(..., help="the key id (cafgw api-keys list)"),
    overlap_hours: float = typer.Option(
        24, "--overlap-hours", help="how long the old key keeps working (0: ends now)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """A new key for the same holder, role and authority; the old one ends after the overlap."""
    settings = settings_from(config)
    issued = ApiKeys(settings.api_keys_file).rotate(key_id, timedelta(hours=overlap_hours))
    _shown_once(issued)
