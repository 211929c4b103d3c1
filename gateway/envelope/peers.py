"""Certificates exchanged between gateways: what one exports, what its peers pin.

A gateway gives its peers the certificate of each authority it hosts
(``<keys_dir>/<code>/cert.pem``, with ``cert-next.pem`` while a key rotation
is staged). A peer pins it as
``<peers_dir>/<code>.pem``, where the trust store looks when
``authorities.yaml`` names no certificate. Pinning refuses a file that holds a
private key, holds no certificate, or whose certificates name another LA code
or have expired; the fingerprints it returns are what the two teams compare
over a channel they already trust (a phone call), since a file can be swapped
on its way.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.envelope.keys import CERT_FILE, NEXT_CERT_FILE, la_code_of
from gateway.errors import ConfigError

__all__ = ["Pinned", "exported", "fingerprint_text", "pin", "write_public"]


@dataclass(frozen=True)
class Pinned:
    """Certificates pinned (or exported) for one authority."""

    code: str
    path: Path
    fingerprints: tuple[str, ...]
    not_after: datetime
    replaced: bool = False


def fingerprint_text(cert: x509.Certificate) -> str:
    """``SHA256 AB:CD:...``, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return "SHA256 " + cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _parse(pem: bytes, source: str, code: str, now: datetime) -> tuple[x509.Certificate, ...]:
    if b"PRIVATE KEY" in pem:
        raise ConfigError(
            f"{source}: holds a private key; a peer is only ever given certificates "
            "(cafgw peers export). Treat that key as disclosed: make a new one"
        )
    try:
        certs = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError:
        raise ConfigError(
            f"{source}: not a PEM certificate (cafgw peers export writes one)"
        ) from None
    for cert in certs:
        named = la_code_of(cert)
        if named is not None and named != code:
            raise ConfigError(
                f"{source}: the certificate is for LA {named} ({cert.subject.rfc4514_string()}), "
                f"not {code}"
            )
        if cert.not_valid_after_utc <= now:
            raise ConfigError(
                f"{source}: the certificate of {code} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d}; ask {code} for its current one"
            )
    return certs


def _describe(code: str, path: Path, certs: tuple[x509.Certificate, ...], replaced: bool) -> Pinned:
    return Pinned(
        code=code,
        path=path,
        fingerprints=tuple(fingerprint_text(c) for c in certs),
        not_after=min(c.not_valid_after_utc for c in certs),
        replaced=replaced,
    )


def exported(code: str, keys_dir: Path, *, now: datetime | None = None) -> tuple[bytes, Pinned]:
    """The PEM that peers pin for hosted authority ``code``, and what it holds.

    The current certificate, and while a rotation is staged the next one too,
    so that peers trust both before the switch. The previous one is left out:
    a pin made from this file is meant to outlast the rotation's overlap.
    """
    folder = keys_dir / code
    current = folder / CERT_FILE
    try:
        pem = current.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"no certificate for {code} in {folder}: make the key once (cafgw init, or "
            f"cafgw keys init --authority {code}) and give every replica that same directory"
        ) from None
    if (folder / NEXT_CERT_FILE).is_file():
        pem += (folder / NEXT_CERT_FILE).read_bytes()
    certs = _parse(pem, str(current), code, now or datetime.now(UTC))
    body = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return body, _describe(code, current, certs, False)


def pin(
    code: str, pem: bytes, source: str, peers_dir: Path, *, now: datetime | None = None
) -> Pinned:
    """Pin the certificates in ``pem`` for peer ``code`` as ``<peers_dir>/<code>.pem``."""
    if not (code.isascii() and code.isalnum()):
        raise ConfigError(f"LA code {code!r} must be ASCII letters and digits only")
    certs = _parse(pem, source, code, now or datetime.now(UTC))
    if not certs:
        raise ConfigError(f"{source}: holds no certificate")
    path = peers_dir / f"{code}.pem"
    replaced = path.exists()
    write_public(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return _describe(code, path, certs, replaced)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate file (0644) atomically: a reader sees the old or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
