"""API authentication: per-authority API keys, stored only as SHA-256 hashes.

Keys live in a JSON file outside the repository (``var/api-keys.json`` by
default): ``{"<sha256 of key>": {"authority": "336", "role": "authority"}}``.
A caller presents its key as ``Authorization: Bearer <key>``. An authority
sees and acts only on its own data; the ``admin`` role may act for any.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.errors import AccessDeniedError, ConfigError

Role = Literal["authority", "admin"]


@dataclass(frozen=True)
class Caller:
    authority: str | None
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, authority: str) -> bool:
        return self.is_admin or self.authority == authority


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The hashed key store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, Caller] = {}
        self._stamp: tuple[int, int] | None = None
        self.reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def reload(self) -> None:
        """Read the key file again (keys issued by another process take effect)."""
        stamp = self._file_stamp()
        if stamp is None:
            self._by_hash, self._stamp = {}, None
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            by_hash = {h: Caller(v.get("authority"), v["role"]) for h, v in raw.items()}
        except (ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"{self.path}: not a valid API key file: {exc}") from exc
        self._by_hash, self._stamp = by_hash, stamp

    def issue(self, authority: str | None, role: Role = "authority") -> str:
        """Create a key, store its hash, and return the key (shown once)."""
        self.reload()  # read-modify-write: keep keys another process issued meanwhile
        key = "cafgw_" + secrets.token_urlsafe(32)
        self._by_hash[_hash(key)] = Caller(authority, role)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {h: {"authority": c.authority, "role": c.role} for h, c in self._by_hash.items()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.path)
        self._stamp = self._file_stamp()
        return key

    def authenticate(self, key: str | None) -> Caller:
        if not key:
            raise AccessDeniedError("missing API key (Authorization: Bearer <key>)")
        if self._file_stamp() != self._stamp:
            # `cafgw api-keys issue` on a running gateway needs no restart.
            self.reload()
        # Looking up the key's hash reveals nothing about stored keys.
        caller = self._by_hash.get(_hash(key))
        if caller is None:
            raise AccessDeniedError("unknown API key")
        return caller
