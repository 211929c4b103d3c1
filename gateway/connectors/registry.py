"""Which connector serves which authority, built from ``authorities.yaml``.

``connector: {kind: pull|webhook|file, url, hmac_secret_file, directory}``.
``load_settings`` reads relative paths against ``authorities.yaml``'s own
folder. The webhook secret is read from its file here, never
logged, and must be at least ``MIN_SECRET_BYTES`` long.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.connectors.base import Connector
from gateway.connectors.filedrop import FileDropConnector
from gateway.connectors.pull import PullConnector
from gateway.errors import ConfigError
from gateway.settings import Settings

if TYPE_CHECKING:
    import httpx

MIN_SECRET_BYTES = 16


def resolve(settings: Settings, path: str) -> Path:
    """``path`` from the settings (made absolute when read), else against the config dir."""
    p = Path(path)
    return p if p.is_absolute() else settings.config_dir / p


def read_secret(path: Path) -> bytes:
    """The HMAC secret in ``path`` (surrounding whitespace dropped)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"webhook secret file {path}: {exc.strerror or exc}") from exc
    return _read_secret(path, stamp)


@functools.lru_cache(maxsize=32)
def _read_secret(path: Path, _stamp: int) -> bytes:
    # Keyed on the modification time: a rotated secret is used without a restart.
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"webhook secret file {path}: {exc.strerror or exc}") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"webhook secret file {path}: the secret must be at least {MIN_SECRET_BYTES} bytes"
        )
    return secret


def pushing(settings: Settings) -> tuple[str, ...]:
    """Hosted authorities whose messages the gateway hands over (webhook or file)."""
    return tuple(
        code
        for code in settings.hosted
        if settings.directory.get(code).connector.kind in ("webhook", "file")
    )


def connector_for(settings: Settings, code: str, client: httpx.Client | None = None) -> Connector:
    """The connector of authority ``code``; ConfigError naming the authority if it is unusable."""
    cfg = settings.directory.get(code).connector
    if cfg.kind == "webhook":
        if not cfg.url or not cfg.hmac_secret_file:
            raise ConfigError(
                f"authority {code}: a webhook connector needs url and hmac_secret_file"
            )
        # Loaded for a webhook only: httpx (and the CLI it imports when rich and
        # click are installed) is ~3 MB of every process that never posts one.
        from gateway.connectors.webhook import WebhookConnector  # noqa: PLC0415

        secret = read_secret(resolve(settings, cfg.hmac_secret_file))
        timeout_s = settings.delivery_for(code).local_timeout_s
        return WebhookConnector(code, cfg.url, secret, timeout_s, client)
    if cfg.kind == "file":
        if not cfg.directory:
            raise ConfigError(f"authority {code}: a file connector needs directory")
        return FileDropConnector(code, resolve(settings, cfg.directory))
    return PullConnector()
