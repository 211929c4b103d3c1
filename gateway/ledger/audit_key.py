"""The audit chain's HMAC key: ``<keys_dir>/audit-chain.key``, 0600.

Keyed hashing means that write access to the ledger database alone (a
database operator, a restored backup, SQL injection somewhere) is not
enough to rewrite the audit chain and recompute its hashes: that also
needs this file, which lives with the signing keys, not in the database.
The host's own administrator can read it; the heads peers hold
(``gateway.ledger.audit_anchor``) cover that case.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from gateway.errors import ConfigError
from gateway.private_files import make_private_dir

FILE_NAME = "audit-chain.key"
KEY_BYTES = 32


def key_path(keys_dir: Path) -> Path:
    return keys_dir / FILE_NAME


def load(keys_dir: Path) -> bytes | None:
    """The key, or None when the file does not exist (a plain SHA-256 chain)."""
    path = key_path(keys_dir)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the audit key: {exc}") from exc
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the audit key must be readable by its owner only (chmod 600)")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{path}: the audit key is not hexadecimal") from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{path}: the audit key must be at least {KEY_BYTES} bytes")
    return key


def ensure(keys_dir: Path) -> bytes:
    """The key, created (0600) on first use; safe when several processes race."""
    found = load(keys_dir)
    if found is not None:
        return found
    make_private_dir(keys_dir)
    path = key_path(keys_dir)
    tmp = path.with_name(f".{FILE_NAME}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    key = load(keys_dir)
    assert key is not None
    return key
