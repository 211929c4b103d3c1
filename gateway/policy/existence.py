"""Existence queries: "does a CAF already exist for this child?" without
revealing who the child is unless the other authority already knows.

The question carries HMAC-SHA256 keyed hashes of the child's identifiers,
with a regional key that only gateways hold (a secret file named in
``config/policy.yaml``, never in the repository). A non-match answer is
exactly ``match=false``; a match answers with the holding coordinator's
contact, never the assessment.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import unicodedata
from pathlib import Path

from gateway.errors import ConfigError
from gateway.model import Child, Detail, Notification, NotificationType
from gateway.private_files import write_private
from gateway.settings import Contact

HASH_PREFIX = "hmac-sha256:"
MIN_KEY_BYTES = 32


def read_key(path: Path) -> bytes:
    """The regional key; refuses a missing, short or world-readable file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    # Re-read only when the file changed: this runs for every received assessment.
    return _read_key(path, info.st_mtime_ns if info else None, info.st_mode if info else None)


@functools.lru_cache(maxsize=8)
def _read_key(path: Path, _mtime_ns: int | None, _mode: int | None) -> bytes:
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: the regional existence-query key file is missing; "
            "create it with: cafgw existence init-key"
        ) from None
    if len(data) < MIN_KEY_BYTES:
        raise ConfigError(f"{path}: the regional key must be at least {MIN_KEY_BYTES} bytes")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the regional key must not be readable by others (chmod 600)")
    return data


def create_key(path: Path) -> bool:
    """Write a new random key at ``path`` (mode 600); False if one exists."""
    if path.exists():
        return False
    write_private(path, secrets.token_hex(32) + "\n")
    return True


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def identity_strings(child: Child) -> list[str]:
    """The normalised identifiers a query may match on."""
    found = []
    upn = child.identifier("UPN")
    if upn:
        found.append(f"UPN:{upn.upper()}")
    nhs = child.identifier("NHS")
    if nhs:
        found.append(f"NHS:{''.join(c for c in nhs if c.isdigit())}")
    if child.date_of_birth:
        found.append(
            f"NAME_DOB:{_fold(child.given_name)}:{_fold(child.family_name)}:"
            f"{child.date_of_birth.isoformat()}"
        )
    return found


def keyed_hashes(key: bytes, child: Child) -> list[str]:
    """HMAC-SHA256 of each normalised identifier, hex."""
    return [
        hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
        for text in identity_strings(child)
    ]


def query_body(hashes: list[str]) -> Notification:
    """The question: keyed hashes only, no identifiers, no case reference."""
    return Notification(
        type=NotificationType.EXISTENCE_QUERY,
        case_ref=None,
        summary="Does a Common Assessment exist for the child with these keyed identifiers?",
        details=tuple(Detail("keyed_hash", HASH_PREFIX + h) for h in hashes),
    )


def hashes_in(query: Notification) -> list[str]:
    return [
        d.value[len(HASH_PREFIX) :]
        for d in query.details
        if d.name == "keyed_hash" and d.value.startswith(HASH_PREFIX)
    ]


def answer_body(match: bool, coordinator: Contact | None) -> Notification:
    """``match=false`` and nothing else; or the holding coordinator's contact."""
    if not match or coordinator is None:
        return Notification(
            type=NotificationType.EXISTENCE_ANSWER,
            case_ref=None,
            summary="match=false",
            details=(Detail("match", "false"),),
        )
    details = [Detail("match", "true"), Detail("coordinator", coordinator.name)]
    if coordinator.email:
        details.append(Detail("coordinator_email", coordinator.email))
    return Notification(
        type=NotificationType.EXISTENCE_ANSWER,
        case_ref=None,
        summary="match=true",
        details=tuple(details),
    )
