"""``cafgw keys`` and ``cafgw api-keys``: signing identities and API keys."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.api.auth import ApiKeys
from gateway.cli.common import ConfigOption, console, friendly, settings_from
from gateway.envelope.keys import generate_identity

keys_app = typer.Typer(
    help="Signing keys and certificates of hosted authorities.", no_args_is_help=True
)
api_keys_app = typer.Typer(
    help="API keys for local systems and administrators.", no_args_is_help=True
)


@keys_app.command("init")
@friendly
def init(
    authority: str = typer.Option(..., "--authority", help="DfE LA code"),
    force: bool = typer.Option(False, "--force", help="replace an existing key"),
    config: Path | None = ConfigOption,
) -> None:
    """Create an ECDSA P-256 key and X.509 certificate for an authority."""
    settings = settings_from(config)
    entry = settings.directory.get(authority)
    identity = generate_identity(authority, entry.name, settings.keys_dir, force=force)
    console.print(f"key: {identity.key_path} (mode 600)", highlight=False)
    console.print(f"certificate: {identity.cert_path}", highlight=False)


@api_keys_app.command("issue")
@friendly
def issue(
    authority: str | None = typer.Option(None, "--authority", help="LA code the key acts for"),
    admin: bool = typer.Option(False, "--admin", help="an administrator key"),
    config: Path | None = ConfigOption,
) -> None:
    """Issue an API key; it is shown once and stored only as a hash."""
    settings = settings_from(config)
    if not admin:
        if authority is None:
            raise typer.BadParameter("give --authority CODE or --admin")
        settings.directory.get(authority)
    key = ApiKeys(settings.api_keys_file).issue(
        None if admin else authority, "admin" if admin else "authority"
    )
    typer.echo(key)
