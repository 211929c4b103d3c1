"""``cafgw keys``: signing identities (API keys: ``gateway.cli.api_keys``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, console, friendly, print_json, settings_from
from gateway.envelope.keys import (
    activate_rotation,
    ensure_identity,
    generate_identity,
    stage_rotation,
)
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError
from gateway.private_files import make_private_dir

keys_app = typer.Typer(
    help="Signing keys and certificates of hosted authorities.", no_args_is_help=True
)


@contextlib.contextmanager
def _exclusive(keys_dir: Path) -> Iterator[None]:
    """Hold ``<keys_dir>/.init.lock``: replicas starting together make one key, not one each."""
    make_private_dir(keys_dir)
    fd = os.open(keys_dir / ".init.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@keys_app.command("init")
@friendly
def init(
    authority: str = typer.Option(..., "--authority", help="DfE LA code"),
    force: bool = typer.Option(False, "--force", help="replace an existing key"),
    if_missing: bool = typer.Option(
        False,
        "--if-missing",
        help="keep an existing key (start scripts); processes starting together make one key",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Create an ECDSA P-256 key and X.509 certificate for an authority."""
    settings = settings_from(config)
    entry = settings.directory.get(authority)
    if if_missing:
        with _exclusive(settings.keys_dir):
            identity = ensure_identity(authority, entry.name, settings.keys_dir)
    else:
        identity = generate_identity(authority, entry.name, settings.keys_dir, force=force)
    console.print(f"key: {identity.key_path} (mode 600)", highlight=False)
    console.print(f"certificate: {identity.cert_path}", highlight=False)


@keys_app.command("rotate")
@friendly
def rotate(
    authority: str = typer.Option(..., "--authority", help="DfE LA code"),
    activate: bool = typer.Option(
        False, "--activate", help="switch to the staged key (after peers pinned bundle.pem)"
    ),
    overlap_days: float | None = typer.Option(
        None,
        "--overlap-days",
        help="how long the old certificate stays trusted after --activate "
        "(default: limits.max_age_s, the longest a message may be in flight)",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Rotate an authority's signing key without downtime, in two steps.

    1. ``cafgw keys rotate --authority X`` stages a new key; give the printed
       bundle (old + new certificate) to every peer to pin.
    2. ``cafgw keys rotate --authority X --activate`` switches to the new key
       (restart the gateway processes one at a time); the old certificate stays
       trusted for the overlap so messages already signed with it still verify.
    """
    settings = settings_from(config)
    entry = settings.directory.get(authority)
    if not activate:
        staged = stage_rotation(authority, entry.name, settings.keys_dir)
        console.print(f"staged: {staged.new_cert_path}", highlight=False)
        console.print(
            f"peers pin: {staged.bundle_path}; then run: "
            f"cafgw keys rotate --authority {authority} --activate",
            highlight=False,
        )
        return
    overlap_s = (
        overlap_days * 86400 if overlap_days is not None else float(settings.limits.max_age_s)
    )
    in_flight_s = settings.worst_case_s(authority)
    if overlap_s < in_flight_s:
        raise ConfigError(
            f"--overlap-days {overlap_s / 86400:g} is shorter than the retry budget of "
            f"{authority} ({in_flight_s:.0f} s): re-sent messages signed with the old key "
            "would be refused"
        )
    done = activate_rotation(authority, settings.keys_dir, overlap=timedelta(seconds=overlap_s))
    console.print(f"active: {done.new_cert_path}", highlight=False)
    console.print(
        f"old certificate trusted until {done.previous_until:%Y-%m-%dT%H:%M:%SZ}; "
        f"peers pin: {done.bundle_path}; restart the gateway processes one at a time",
        highlight=False,
    )


@keys_app.command("expiry")
@friendly
def expiry(
    days: int | None = typer.Option(None, "--days", help="warn this many days ahead"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
    config: Path | None = ConfigOption,
) -> None:
    """List trusted certificates that expire or retire soon (exit 1 if any)."""
    settings = settings_from(config)
    store = TrustStore.from_settings(settings)
    warnings = store.expiring(datetime.now(UTC), days or settings.trust.expiry_warning_days)
    if as_json:
        print_json(
            [
                {
                    "authority": w.authority,
                    "ends_at": w.ends_at.isoformat(),
                    "days_left": w.days_left,
                    "retiring": w.retiring,
                    "subject": w.subject,
                    "fingerprint_sha256": w.fingerprint_hex,
                }
                for w in warnings
            ]
        )
        if warnings:
            raise typer.Exit(1)
        return
    for w in warnings:
        what = "retires" if w.retiring else "expires"
        console.print(
            f"{w.authority}: {what} {w.ends_at:%Y-%m-%d} ({w.days_left} days) {w.subject} "
            f"sha256:{w.fingerprint_hex[:16]}",
            highlight=False,
        )
    if warnings:
        raise typer.Exit(1)
    console.print("no certificate expires soon", highlight=False)
