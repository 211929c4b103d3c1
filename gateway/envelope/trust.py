"""The trust store: which certificates may sign for which authority.

Two ways to trust a sender, both read once at start:

- **Pinning.** Certificates pinned per LA code, from the region directory
  (``authorities.yaml``: ``certificate:``, read against that file's folder;
  one PEM file may hold several) or, when no certificate is configured, from
  ``<keys_dir>/<code>/cert*.pem`` (a hosted authority's own) and
  ``<peers_dir>/<code>.pem`` (a peer's, pinned by ``cafgw peers add``).
- **Regional CA** (``trust.regional_ca`` in ``gateway.yaml``). A certificate
  issued directly by that CA, currently valid, not itself a CA, whose
  subject ``serialNumber`` is the sender's LA code, may sign for that code.
  That certificate travels in the message's ``KeyInfo``; it is trusted
  because the CA signed it for that LA code, never for itself.

An authority may have several pinned certificates at once so that a key
rotation can overlap (``cafgw keys rotate``): messages signed with the old
key still verify while peers pick up the new one. A rotated-out certificate
file ``cert-previous.pem`` carries a sidecar ``cert-previous.until`` (an ISO
8601 UTC time) after which the store stops trusting it, even if the
certificate itself is still valid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.envelope.keys import la_code_of, load_certificates
from gateway.errors import ConfigError, TrustError
from gateway.settings import Directory, Settings

__all__ = ["ExpiryWarning", "TrustStore", "fingerprint", "read_until"]

UNTIL_SUFFIX = ".until"


@lru_cache(maxsize=1024)
def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 fingerprint of a certificate's DER encoding.

    Cached: every verification asks it of the sender's pinned certificates
    (whether one is retired), about 0.02 ms each time.
    """
    return cert.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class ExpiryWarning:
    """A trusted certificate that expires (or stops being trusted) soon."""

    authority: str
    """LA code, or ``"CA"`` for the regional CA."""
    subject: str
    fingerprint_hex: str
    ends_at: datetime
    days_left: int
    retiring: bool
    """True when the end is a rotation's overlap end, not the certificate's expiry."""


@dataclass(frozen=True)
class TrustStore:
    """Pinned certificates by LA code and an optional regional CA; read-only."""

    _pinned: Mapping[str, tuple[x509.Certificate, ...]]
    _ca: x509.Certificate | None = None
    _retire_at: Mapping[bytes, datetime] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_mapping(
        cls,
        certificates: Mapping[str, Iterable[x509.Certificate]],
        *,
        regional_ca: x509.Certificate | None = None,
        retire_at: Mapping[bytes, datetime] | None = None,
    ) -> TrustStore:
        """Build a store from LA code → certificates (tests, tools)."""
        pinned = {code: tuple(certs) for code, certs in certificates.items()}
        return cls(
            MappingProxyType({code: c for code, c in pinned.items() if c}),
            regional_ca,
            MappingProxyType(dict(retire_at or {})),
        )

    def __reduce__(self) -> tuple[Callable[..., TrustStore], tuple[object, ...]]:
        """Pickled with its certificates as DER (they do not pickle themselves): the
        same store, for the check processes (``services.receiving.check_pool``)."""
        pinned = {code: tuple(_der(c) for c in certs) for code, certs in self._pinned.items()}
        ca = None if self._ca is None else _der(self._ca)
        return _from_der, (pinned, ca, dict(self._retire_at))

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustStore:
        """The trust store a gateway with ``settings`` starts with."""
        return cls.from_directory(
            settings.directory,
            settings.keys_dir,
            regional_ca=settings.trust.regional_ca,
            peers_dir=settings.peers_dir,
        )

    @classmethod
    def from_directory(
        cls,
        directory: Directory,
        keys_dir: Path,
        *,
        regional_ca: Path | None = None,
        peers_dir: Path | None = None,
    ) -> TrustStore:
        """Pin the certificates of every authority of the region directory.

        A configured certificate file that is missing or holds another LA's
        certificate is a :class:`ConfigError`; an authority with nothing
        configured and nothing in ``keys_dir`` or ``peers_dir`` is simply not
        trusted yet (unless a regional CA vouches for it). A relative
        ``certificate:`` (a directory not read by ``load_settings``) is read
        against ``keys_dir``.
        """
        pinned: dict[str, tuple[x509.Certificate, ...]] = {}
        retire_at: dict[bytes, datetime] = {}
        for code, authority in directory.authorities.items():
            if authority.certificate:
                path = Path(authority.certificate)
                path = path if path.is_absolute() else keys_dir / path
                if not path.is_file():
                    raise ConfigError(
                        f"authorities.yaml: authorities.{code}.certificate: {path} not found"
                    )
                paths = [path]
            else:
                paths = sorted((keys_dir / code).glob("cert*.pem"))
                if peers_dir is not None and (peers_dir / f"{code}.pem").is_file():
                    paths.append(peers_dir / f"{code}.pem")
            certs: list[x509.Certificate] = []
            for path in paths:
                found = load_certificates(path)
                until = read_until(path)
                for cert in found:
                    _check_subject(code, cert)
                    if until is not None:
                        retire_at[fingerprint(cert)] = until
                certs.extend(found)
            if certs:
                pinned[code] = _unique(certs)
        ca = _load_ca(regional_ca) if regional_ca is not None else None
        return cls(MappingProxyType(pinned), ca, MappingProxyType(retire_at))

    def certificates_for(self, code: str) -> tuple[x509.Certificate, ...]:
        """The certificates pinned for ``code``; :class:`TrustError` if none."""
        try:
            return self._pinned[code]
        except KeyError:
            raise TrustError(
                f"unknown sender {code!r}: no certificate is pinned for it "
                "(add it to authorities.yaml or the keys directory)"
            ) from None

    def current_for(self, code: str, now: datetime) -> list[x509.Certificate]:
        """Pinned certificates of ``code`` that are valid and not retired at ``now``."""
        return [c for c in self._pinned.get(code, ()) if self._in_force(c, now)]

    def issued_by_ca_for(self, code: str, cert: x509.Certificate, now: datetime) -> bool:
        """True when the regional CA issued ``cert`` for LA ``code`` and both are valid now."""
        ca = self._ca
        if ca is None or la_code_of(cert) != code or cert.issuer != ca.subject:
            return False
        if not (_valid_at(ca, now) and _valid_at(cert, now)) or _is_ca(cert):
            return False
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    @property
    def has_regional_ca(self) -> bool:
        return self._ca is not None

    def codes(self) -> frozenset[str]:
        """LA codes that have at least one pinned certificate."""
        return frozenset(self._pinned)

    def __contains__(self, code: object) -> bool:
        return code in self._pinned

    def expiring(self, now: datetime, within_days: int) -> list[ExpiryWarning]:
        """Trusted certificates whose trust ends within ``within_days`` of ``now``.

        Already-ended ones are included (``days_left`` <= 0) so an operator
        sees them too; the soonest first.
        """
        horizon = now + timedelta(days=within_days)
        warnings = []
        owned = [(code, c) for code, certs in self._pinned.items() for c in certs]
        if self._ca is not None:
            owned.append(("CA", self._ca))
        for code, cert in owned:
            retire = self._retire_at.get(fingerprint(cert))
            ends = cert.not_valid_after_utc
            retiring = retire is not None and retire < ends
            if retire is not None and retiring:
                ends = retire
            if ends <= horizon:
                warnings.append(
                    ExpiryWarning(
                        authority=code,
                        subject=cert.subject.rfc4514_string(),
                        fingerprint_hex=fingerprint(cert).hex(),
                        ends_at=ends,
                        days_left=(ends - now).days,
                        retiring=retiring,
                    )
                )
        return sorted(warnings, key=lambda w: w.ends_at)

    def _in_force(self, cert: x509.Certificate, now: datetime) -> bool:
        retire = self._retire_at.get(fingerprint(cert))
        return _valid_at(cert, now) and (retire is None or now <= retire)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _from_der(
    pinned: Mapping[str, tuple[bytes, ...]],
    ca: bytes | None,
    retire_at: Mapping[bytes, datetime],
) -> TrustStore:
    """``TrustStore.__reduce__``'s way back."""
    return TrustStore.from_mapping(
        {code: [x509.load_der_x509_certificate(d) for d in ders] for code, ders in pinned.items()},
        regional_ca=None if ca is None else x509.load_der_x509_certificate(ca),
        retire_at=retire_at,
    )


def read_until(cert_path: Path) -> datetime | None:
    """The overlap end written beside a rotated-out certificate, if any."""
    sidecar = cert_path.with_suffix(UNTIL_SUFFIX)
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8").strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{sidecar}: expected an ISO 8601 time, found {text[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _load_ca(path: Path) -> x509.Certificate:
    if not path.is_file():
        raise ConfigError(f"gateway.yaml: trust.regional_ca: {path} not found")
    ca = load_certificates(path)[0]
    if not _is_ca(ca):
        raise ConfigError(
            f"gateway.yaml: trust.regional_ca: {path} is not a CA certificate "
            "(basicConstraints CA:TRUE missing)"
        )
    return ca


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
