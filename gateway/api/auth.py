"""API keys: each names a person and role, expires, can be revoked and rotated.

Keys live in a JSON file outside the repository (``var/api-keys.json`` by
default, mode 0600), stored only as SHA-256 hashes of the key::

    {"version": 2, "keys": {"<key id>": {"hash": "...", "authority": "336",
      "role": "authority", "holder": "Jo Bloggs", "holder_role": "case system",
      "issued_at": "...", "expires_at": "...", "revoked_at": null, ...}}}

A key reads ``cafgw_<key id>_<secret>``: the key id is public (listings,
audit entries, revocation), the secret is shown once at issue and never
again. A caller presents it as ``Authorization: Bearer <key>``. An authority
key sees and acts only on its own authority's data; the ``admin`` role may
act for any. A file of the first format (``{"<hash>": {"authority", "role"}}``,
keys that name no one and never expire) is converted when read: its keys are
kept with the holder "unnamed (issued before keys named people)" and expire
``LEGACY_GRACE_DAYS`` after the conversion, so they are reissued in time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from gateway.errors import AccessDeniedError, ConfigError, NotFoundError
from gateway.private_files import tighten, write_private

log = logging.getLogger(__name__)

Role = Literal["authority", "admin"]
DEFAULT_VALIDITY_DAYS = 90
MAX_VALIDITY_DAYS = 366
LEGACY_GRACE_DAYS = 30
LEGACY_HOLDER = "unnamed (issued before keys named people)"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's authority and role, and the person it names."""

    authority: str | None
    role: Role
    key_id: str = ""
    holder: str = ""
    holder_role: str = ""
    rate_per_minute: int | None = None  # None: the gateway's default

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, authority: str) -> bool:
        return self.is_admin or self.authority == authority

    def looks_in(self, authorities: Sequence[str]) -> tuple[str, ...]:
        """The authorities whose messages this caller may look up: for an administrator
        ``authorities`` (``Gateway.ledger_authorities``: every one a ledger row may be
        of), else its own. Named in a look-up by message id, they let the message-id
        index find it, where naming none read the whole ledger (``Ledger.find``;
        issue 14)."""
        if self.is_admin:
            return tuple(authorities)
        return () if self.authority is None else (self.authority,)

    @property
    def actor(self) -> str:
        """How audit entries name this caller: the person, their role, the key."""
        acting = "admin" if self.is_admin else f"for {self.authority}"
        who = self.holder or "unnamed"
        role = f"{self.holder_role}, " if self.holder_role else ""
        return f"{who} ({role}{acting}, key {self.key_id or '?'})"[:128]

    def named(self, claimed: str | None) -> str:
        """How audit entries name a caller who also gave a name (a dismissal's "by", a
        replay's "requested_by"): that name, a claim, then the key that made the
        request, which proves who did; ``actor`` when no name was given."""
        name = " ".join((claimed or "").split())[:60]
        if not name:
            return self.actor
        acting = "admin" if self.is_admin else f"for {self.authority}"
        return f"{name} ({acting}, key {self.key_id or '?'})"[:128]


@dataclass(frozen=True)
class KeyRecord:
    """One stored key (its hash, never the key itself)."""

    key_id: str
    hash: str
    authority: str | None
    role: Role
    holder: str
    holder_role: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    replaced_by: str | None = None  # the key id a rotation issued in its place
    rate_per_minute: int | None = None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def caller(self) -> Caller:
        return Caller(
            self.authority,
            self.role,
            self.key_id,
            self.holder,
            self.holder_role,
            self.rate_per_minute,
        )


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: ``key`` is the secret, shown once (never in ``repr``)."""

    record: KeyRecord
    key: str = field(repr=False)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _record(key_id: str, raw: dict[str, Any]) -> KeyRecord:
    issued = _time(raw["issued_at"])
    expires = _time(raw["expires_at"])
    if issued is None or expires is None:
        raise ValueError(f"key {key_id}: issued_at and expires_at are required")
    role = raw["role"]
    if role not in ("authority", "admin"):
        raise ValueError(f"key {key_id}: unknown role {role!r}")
    return KeyRecord(
        key_id=key_id,
        hash=str(raw["hash"]),
        authority=raw.get("authority"),
        role=role,
        holder=str(raw["holder"]),
        holder_role=str(raw.get("holder_role") or ""),
        issued_at=issued,
        expires_at=expires,
        revoked_at=_time(raw.get("revoked_at")),
        revoked_reason=raw.get("revoked_reason"),
        replaced_by=raw.get("replaced_by"),
        rate_per_minute=raw.get("rate_per_minute"),
    )


def _raw(record: KeyRecord) -> dict[str, Any]:
    out = asdict(record)
    out.pop("key_id")
    for name in ("issued_at", "expires_at", "revoked_at"):
        value = out[name]
        out[name] = value.isoformat() if value is not None else None
    return out


class ApiKeys:
    """The hashed key store; safe to share between the API's threads."""

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._records: dict[str, KeyRecord] = {}
        self._by_hash: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        self.reload()

    # -- reading -------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def reload(self) -> None:
        """Read the key file again (keys issued or revoked by another process take effect)."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp is None:
                self._set({}, None)
                return
            tighten(self.path)
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(raw, dict) and raw.get("version") == 2:
                    records = {k: _record(k, v) for k, v in raw["keys"].items()}
                    self._set(records, stamp)
                    return
                records = self._from_first_format(raw)
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise ConfigError(f"{self.path}: not a valid API key file: {exc}") from exc
            log.warning(
                "%s: %d API key(s) name no person; converted, they expire in %d days: "
                "reissue them with cafgw api-keys issue --holder ... --role ...",
                self.path,
                len(records),
                LEGACY_GRACE_DAYS,
            )
            self._set(records, None)
            self._save()

    def _from_first_format(self, raw: Any) -> dict[str, KeyRecord]:
        now = self.clock()
        records = {}
        for digest, entry in dict(raw).items():
            key_id = "legacy-" + str(digest)[:12]
            records[key_id] = KeyRecord(
                key_id=key_id,
                hash=str(digest),
                authority=entry.get("authority"),
                role=entry["role"],
                holder=LEGACY_HOLDER,
                holder_role="",
                issued_at=now,
                expires_at=now + timedelta(days=LEGACY_GRACE_DAYS),
            )
        return records

    def _set(self, records: dict[str, KeyRecord], stamp: tuple[int, int] | None) -> None:
        self._records = records
        self._by_hash = {r.hash: r for r in records.values()}
        self._stamp = stamp

    def _put(self, record: KeyRecord) -> None:
        self._records[record.key_id] = record
        self._by_hash[record.hash] = record

    def _save(self) -> None:
        data = {"version": 2, "keys": {k: _raw(r) for k, r in sorted(self._records.items())}}
        write_private(self.path, json.dumps(data, indent=2))
        self._stamp = self._file_stamp()

    def records(self) -> list[KeyRecord]:
        """Every stored key, oldest first."""
        with self._lock:
            self.reload()
            return sorted(self._records.values(), key=lambda r: (r.issued_at, r.key_id))

    def get(self, key_id: str) -> KeyRecord:
        with self._lock:
            self.reload()
            try:
                return self._records[key_id]
            except KeyError:
                raise NotFoundError(
                    f"no API key with id {key_id!r} (see cafgw api-keys list)"
                ) from None

    # -- writing -------------------------------------------------------------
    def issue(
        self,
        authority: str | None,
        role: Role = "authority",
        *,
        holder: str | None = None,
        holder_role: str = "",
        days: float = DEFAULT_VALIDITY_DAYS,
        rate_per_minute: int | None = None,
    ) -> str:
        """Create a key, store its hash, and return the key (shown once)."""
        return self.issue_key(
            authority,
            role,
            holder=holder,
            holder_role=holder_role,
            days=days,
            rate_per_minute=rate_per_minute,
        ).key

    def issue_key(
        self,
        authority: str | None,
        role: Role = "authority",
        *,
        holder: str | None = None,
        holder_role: str = "",
        days: float = DEFAULT_VALIDITY_DAYS,
        rate_per_minute: int | None = None,
    ) -> IssuedKey:
        """Like ``issue``, with the stored record (key id, expiry) beside the key."""
        if role == "authority" and not authority:
            raise ConfigError("an authority key needs the authority it acts for")
        if not 0 < days <= MAX_VALIDITY_DAYS:
            raise ConfigError(f"a key is valid for 1 second to {MAX_VALIDITY_DAYS} days")
        if rate_per_minute is not None and rate_per_minute < 1:
            raise ConfigError("a key's rate limit is at least 1 request per minute")
        name = (holder or "").strip() or f"unnamed {role} key"
        with self._lock:
            self.reload()  # read-modify-write: keep keys another process issued meanwhile
            key_id = secrets.token_hex(6)
            while key_id in self._records:
                key_id = secrets.token_hex(6)
            key = f"cafgw_{key_id}_{secrets.token_urlsafe(32)}"
            now = self.clock()
            record = KeyRecord(
                key_id=key_id,
                hash=_hash(key),
                authority=None if role == "admin" else authority,
                role=role,
                holder=name[:200],
                holder_role=holder_role.strip()[:200],
                issued_at=now,
                expires_at=now + timedelta(days=days),
                rate_per_minute=rate_per_minute,
            )
            self._put(record)
            self._save()
        return IssuedKey(record, key)

    def revoke(self, key_id: str, reason: str) -> KeyRecord:
        """Revoke a key at once; it answers 401 from the next request on."""
        with self._lock:
            record = self.get(key_id)
            if record.revoked_at is None:
                record = replace(record, revoked_at=self.clock(), revoked_reason=reason[:500])
                self._put(record)
                self._save()
            return record

    def rotate(self, key_id: str, overlap: timedelta = timedelta(hours=24)) -> IssuedKey:
        """Issue a new key for the same person, role and authority; the old one ends soon.

        The old key stays valid for ``overlap`` (the local system switches
        over meanwhile), then expires; the new key is valid as long as a fresh one.
        """
        with self._lock:
            old = self.get(key_id)
            if old.state(self.clock()) != "active":
                raise ConfigError(f"API key {key_id} is {old.state(self.clock())}; issue a new one")
            validity = (old.expires_at - old.issued_at).total_seconds() / 86400
            fresh = self.issue_key(
                old.authority,
                old.role,
                holder=old.holder,
                holder_role=old.holder_role,
                days=min(max(validity, 1.0), MAX_VALIDITY_DAYS),
                rate_per_minute=old.rate_per_minute,
            )
            ends = min(old.expires_at, self.clock() + overlap)
            self._put(replace(old, expires_at=ends, replaced_by=fresh.record.key_id))
            self._save()
        return fresh

    # -- authenticating --------------------------------------------------------
    def authenticate(self, key: str | None) -> Caller:
        """The caller of ``key``; ``AccessDeniedError`` if missing, unknown, expired or revoked."""
        if not key:
            raise AccessDeniedError("missing API key (Authorization: Bearer <key>)")
        with self._lock:
            if self._file_stamp() != self._stamp:
                # `cafgw api-keys issue|revoke` on a running gateway needs no restart.
                self.reload()
            # Looking up the key's hash reveals nothing about stored keys.
            record = self._by_hash.get(_hash(key))
        if record is None:
            raise AccessDeniedError("unknown API key")
        state = record.state(self.clock())
        if state != "active":
            # The key id is public; saying why helps the holder get a new one.
            raise AccessDeniedError(f"API key {record.key_id} is {state}")
        return record.caller()
