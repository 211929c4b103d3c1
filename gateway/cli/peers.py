"""``cafgw peers add|export``: exchange certificates with the gateways of other authorities."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import typer

from gateway.cli.common import (
    ConfigOption,
    acting_authority,
    console,
    err_console,
    friendly,
    settings_from,
)
from gateway.envelope.peers import Pinned, exported, pin, write_public
from gateway.errors import ConfigError

peers_app = typer.Typer(
    help="Certificates of peer gateways: export yours, pin theirs.", no_args_is_help=True
)


def _show(pinned: Pinned, verb: str) -> None:
    console.print(
        f"{verb} {pinned.code}: {pinned.path} (valid until {pinned.not_after:%Y-%m-%d})",
        highlight=False,
        emoji=False,
    )
    for text in pinned.fingerprints:
        console.print(f"  {text}", highlight=False, emoji=False)


@peers_app.command("add")
@friendly
def add(
    code: str = typer.Argument(..., help="the peer's DfE LA code"),
    cert: Path = typer.Argument(..., help="the peer's certificate (PEM, from cafgw peers export)"),
    config: Path | None = ConfigOption,
) -> None:
    """Pin a peer's certificate: messages it signs with that key are trusted.

    Compare the printed fingerprint with the one the peer's team reads out to
    you over a channel you already trust; a file can be swapped on its way.
    Restart the gateway to trust it.
    """
    settings = settings_from(config)
    settings.directory.get(code)
    if code in settings.hosted:
        raise ConfigError(
            f"{code} is hosted by this gateway: its own certificate is in {settings.keys_dir}"
        )
    try:
        pem = cert.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{cert}: {exc.strerror or exc}") from exc
    pinned = pin(code, pem, str(cert), settings.peers_dir)
    _show(pinned, "replaced" if pinned.replaced else "pinned")
    console.print(
        "compare the fingerprint with the peer's team, then restart this gateway", highlight=False
    )


@peers_app.command("export")
@friendly
def export(
    authority: str | None = typer.Option(
        None, "--authority", help="the hosted authority (default: the only one hosted here)"
    ),
    out: Path | None = typer.Option(None, "--out", help="write the PEM here (default: stdout)"),
    config: Path | None = ConfigOption,
) -> None:
    """Write this gateway's certificate for peers to pin (never the key)."""
    settings = settings_from(config)
    code = acting_authority(settings, authority)
    pem, what = exported(code, settings.keys_dir)
    if out is None:
        sys.stdout.buffer.write(pem)
        for text in what.fingerprints:
            err_console.print(f"{code}: {text}", highlight=False, emoji=False)
        return
    write_public(out, pem)
    _show(replace(what, path=out), "exported")
