"""The trust store: which certificates may sign for which authority.

Certificates are pinned per LA code, read once at start from the region
directory (``authorities.yaml``: ``certificate:``, relative to the keys
directory) or, when no certificate is configured, from
``<keys_dir>/<code>/cert*.pem``. An authority may have several certificates
at once so that a key rotation can overlap: messages signed with the old key
still verify while peers pick up the new one.

A certificate found inside a message's ``KeyInfo`` is never trusted for
itself; the verifier asks this store for the sender's pinned certificates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.envelope.keys import la_code_of, load_certificates
from gateway.errors import ConfigError, TrustError
from gateway.settings import Directory

__all__ = ["TrustStore", "fingerprint"]


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 fingerprint of a certificate's DER encoding."""
    return cert.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class TrustStore:
    """Pinned certificates by LA code; read-only after construction."""

    _pinned: Mapping[str, tuple[x509.Certificate, ...]]

    @classmethod
    def from_mapping(cls, certificates: Mapping[str, Iterable[x509.Certificate]]) -> TrustStore:
        """Build a store from LA code → certificates (tests, tools)."""
        pinned = {code: tuple(certs) for code, certs in certificates.items()}
        return cls(MappingProxyType({code: c for code, c in pinned.items() if c}))

    @classmethod
    def from_directory(cls, directory: Directory, keys_dir: Path) -> TrustStore:
        """Pin the certificates of every authority of the region directory.

        A configured certificate file that is missing or holds another LA's
        certificate is a :class:`ConfigError`; an authority with nothing
        configured and nothing in ``keys_dir`` is simply not trusted yet.
        """
        pinned: dict[str, tuple[x509.Certificate, ...]] = {}
        for code, authority in directory.authorities.items():
            if authority.certificate:
                path = Path(authority.certificate)
                path = path if path.is_absolute() else keys_dir / path
                if not path.is_file():
                    raise ConfigError(
                        f"authorities.yaml: authorities.{code}.certificate: {path} not found"
                    )
                certs = load_certificates(path)
            else:
                certs = tuple(
                    cert
                    for path in sorted((keys_dir / code).glob("cert*.pem"))
                    for cert in load_certificates(path)
                )
            for cert in certs:
                _check_subject(code, cert)
            if certs:
                pinned[code] = _unique(certs)
        return cls(MappingProxyType(pinned))

    def certificates_for(self, code: str) -> tuple[x509.Certificate, ...]:
        """The certificates pinned for ``code``; :class:`TrustError` if none."""
        try:
            return self._pinned[code]
        except KeyError:
            raise TrustError(
                f"unknown sender {code!r}: no certificate is pinned for it "
                "(add it to authorities.yaml or the keys directory)"
            ) from None

    def codes(self) -> frozenset[str]:
        """LA codes that have at least one pinned certificate."""
        return frozenset(self._pinned)

    def __contains__(self, code: object) -> bool:
        return code in self._pinned


def _check_subject(code: str, cert: x509.Certificate) -> None:
    # Catches a certificate path pointing at the wrong authority's file.
    # Certificates without a serialNumber (made by other tooling) are accepted:
    # pinning, not the subject, is what establishes trust.
    found = la_code_of(cert)
    if found is not None and found != code:
        raise ConfigError(
            f"certificate pinned for {code} names LA {found} in its subject "
            f"({cert.subject.rfc4514_string()}); check authorities.yaml"
        )


def _unique(certs: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(fingerprint(cert), cert)
    return tuple(seen.values())
