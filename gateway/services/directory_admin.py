"""Reloading the region directory (``authorities.yaml``) without a restart.

Like an adapter reload: everything is built from the new file first (the
directory itself, the settings' cross-checks against it, every adapter
mapping, the pinned certificates) and put in force only if all of it is
valid; otherwise ``ConfigError`` (or ``MappingError``) names the file and
key and the directory in force does not change. Every reload, and every
refused one, is an audit entry naming who asked, for each hosted authority.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from gateway.context import AdapterSet, Gateway, load_adapters
from gateway.envelope.trust import TrustStore
from gateway.errors import CafgwError, ConfigError
from gateway.ledger import audit
from gateway.settings import Directory, Settings, load_directory

ACTION = "DIRECTORY_RELOAD"
REFUSED = "DIRECTORY_REFUSED"


@dataclass(frozen=True)
class DirectoryChange:
    """What a reload changed, by LA code."""

    path: str
    digest: str  # sha256 of the file put in force
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def summary(self) -> str:
        parts = [f"{name} {', '.join(codes) or 'none'}" for name, codes in self._parts()]
        return f"{self.path} (sha256 {self.digest[:12]}): " + "; ".join(parts)

    def _parts(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("added", self.added), ("removed", self.removed), ("changed", self.changed)]


@dataclass(frozen=True)
class Candidate:
    """A directory read and checked against this gateway, not yet in force."""

    settings: Settings
    adapters: AdapterSet
    trust: TrustStore
    change: DirectoryChange


def directory_path(settings: Settings) -> Path:
    """Where this gateway's ``authorities.yaml`` is."""
    path = settings.authorities_file
    return (path if path.is_absolute() else settings.config_dir / path).resolve()


def prepare(current: Settings, path: Path | None = None) -> Candidate:
    """Read ``path`` (default: the settings' authorities.yaml) and build all that depends on it.

    ``ConfigError``/``MappingError`` name what is wrong; nothing is changed.
    """
    path = path or directory_path(current)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    directory = load_directory(path)
    settings = _with_directory(current, directory, path)
    adapters = load_adapters(settings)
    for code, authority in directory.authorities.items():
        if authority.adapter is not None and authority.adapter not in adapters.by_name:
            known = ", ".join(sorted(adapters.by_name)) or "none"
            raise ConfigError(
                f"{path}: authorities.{code}.adapter: no adapter named {authority.adapter!r} "
                f"in {settings.adapters_dir} (known: {known})"
            )
    trust = TrustStore.from_settings(settings)
    old, new = current.directory.authorities, directory.authorities
    change = DirectoryChange(
        path=str(path),
        digest=hashlib.sha256(data).hexdigest(),
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(c for c in set(old) & set(new) if old[c] != new[c])),
    )
    return Candidate(settings, adapters, trust, change)


def reload(gw: Gateway, actor: str, path: Path | None = None) -> DirectoryChange:
    """Put the directory at ``path`` in force if it is valid; audit who asked either way."""
    try:
        candidate = prepare(gw.settings, path)
    except CafgwError as exc:
        audit_for_hosted(gw, actor, REFUSED, f"refused, the directory in force is unchanged: {exc}")
        raise
    gw.reconfigure(candidate.settings, candidate.adapters, candidate.trust)
    audit_for_hosted(gw, actor, ACTION, f"reloaded {candidate.change.summary()}")
    return candidate.change


def _with_directory(settings: Settings, directory: Directory, path: Path) -> Settings:
    """``settings`` with ``directory``, checked as at start (hosted, encryption pairs, ...)."""
    for code in settings.delivery_overrides:
        if code not in directory:
            raise ConfigError(
                f"{path}: authority {code} has delivery settings (authority_delivery) "
                "but is no longer in the directory"
            )
    try:
        return Settings(**{**dict(settings), "directory": directory})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{path}: {reasons}") from None


def audit_for_hosted(gw: Gateway, actor: str, action: str, detail: str) -> None:
    """One audit entry for every hosted authority: a change in force for all of them
    (the directory, the adapters' mappings), named by who asked."""
    events = [
        audit.AuditEvent(actor=actor[:128], action=action, authority=code, detail=detail)
        for code in gw.hosted
    ]
    with gw.ledger.transaction() as conn:
        audit.append(gw.ledger, events, conn)
