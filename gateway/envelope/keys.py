"""Signing identities of hosted authorities: private keys and certificates.

Each authority hosted by a gateway has ``<keys_dir>/<code>/key.pem`` (ECDSA
P-256, mode 0600, in a 0700 directory) and ``<keys_dir>/<code>/cert.pem``, a
self-signed X.509 certificate whose subject carries the authority's name
(CN), ``O=cafgw`` and the LA code as ``serialNumber``, so that a regional CA
mode can tie a certificate to an authority by its subject.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.errors import ConfigError
from gateway.private_files import make_private_dir, write_private

__all__ = [
    "Identity",
    "PrivateKey",
    "Rotation",
    "activate_rotation",
    "ensure_identity",
    "generate_identity",
    "la_code_of",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "stage_rotation",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
# Key rotation (see stage_rotation): the next identity waits beside the
# current one; after activation the old certificate stays trusted until the
# time in its ``.until`` sidecar. BUNDLE_FILE is what peers pin meanwhile.
NEXT_KEY_FILE = "key-next.pem"
NEXT_CERT_FILE = "cert-next.pem"
PREVIOUS_CERT_FILE = "cert-previous.pem"
PREVIOUS_KEY_FILE = "key-previous.pem"
BUNDLE_FILE = "bundle.pem"
# Certificates are back-dated a little so that a peer whose clock runs
# slightly behind does not see a brand-new certificate as not yet valid.
_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Identity:
    """Where an authority's private key and certificate live."""

    code: str
    key_path: Path
    cert_path: Path


def generate_identity(
    code: str,
    name: str,
    keys_dir: Path,
    *,
    valid_days: int = 825,
    now: datetime | None = None,
    force: bool = False,
) -> Identity:
    """Create a new P-256 key and self-signed certificate for authority ``code``.

    Refuses to replace an existing key unless ``force`` is true: a lost key
    means peers must re-pin the new certificate.
    """
    identity = _identity(code, keys_dir)
    if identity.key_path.exists() and not force:
        raise ConfigError(
            f"{identity.key_path}: a key already exists for {code}; to replace it (every "
            f"peer must then pin the new certificate) run: cafgw keys init --authority {code} "
            "--force, or to change keys without downtime: cafgw keys rotate"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    make_private_dir(identity.key_path.parent, tighten_existing=True)
    write_private(identity.key_path, _key_pem(key))
    write_private(identity.cert_path, _certificate_pem(key, code, name, valid_days, now))
    return identity


def ensure_identity(
    code: str,
    name: str,
    keys_dir: Path,
    *,
    valid_days: int = 825,
    now: datetime | None = None,
) -> Identity:
    """Return the identity of ``code``, creating key and certificate only if missing.

    A key without a certificate gets a new certificate for the same key; a
    certificate without its key is an error (the key was lost or moved).
    """
    identity = _identity(code, keys_dir)
    has_key, has_cert = identity.key_path.exists(), identity.cert_path.exists()
    if has_key and has_cert:
        return identity
    if has_cert:
        raise ConfigError(
            f"{identity.cert_path} exists but {identity.key_path} is missing; restore the "
            f"key, or create a new identity with: cafgw keys init --authority {code} --force "
            "(and re-pin it at every peer)"
        )
    if not has_key:
        return generate_identity(code, name, keys_dir, valid_days=valid_days, now=now)
    key = load_private_key(identity.key_path)
    write_private(identity.cert_path, _certificate_pem(key, code, name, valid_days, now))
    return identity


@dataclass(frozen=True)
class Rotation:
    """Where a key rotation left things."""

    code: str
    bundle_path: Path
    """Certificates peers must pin (current and next, or new and previous)."""
    new_cert_path: Path
    previous_cert_path: Path | None
    previous_until: datetime | None


def stage_rotation(
    code: str,
    name: str,
    keys_dir: Path,
    *,
    valid_days: int = 825,
    now: datetime | None = None,
) -> Rotation:
    """Create the next key and certificate of ``code`` beside the current ones.

    Nothing signs with the next key yet; ``bundle.pem`` (current + next) is
    what peers pin before :func:`activate_rotation`, so that both verify
    everywhere before the switch and no message is refused during it.
    """
    identity = _identity(code, keys_dir)
    folder = identity.key_path.parent
    if not (identity.key_path.exists() and identity.cert_path.exists()):
        raise ConfigError(
            f"{folder}: no current key and certificate for {code}; "
            f"create them with: cafgw keys init --authority {code}"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(folder / NEXT_KEY_FILE, _key_pem(key))
    write_private(folder / NEXT_CERT_FILE, _certificate_pem(key, code, name, valid_days, now))
    bundle = (folder / CERT_FILE).read_bytes() + (folder / NEXT_CERT_FILE).read_bytes()
    write_private(folder / BUNDLE_FILE, bundle)
    return Rotation(code, folder / BUNDLE_FILE, folder / NEXT_CERT_FILE, None, None)


def activate_rotation(
    code: str, keys_dir: Path, *, overlap: timedelta, now: datetime | None = None
) -> Rotation:
    """Switch ``code`` to its staged key; the old certificate stays trusted for ``overlap``.

    Messages already signed with the old key (in flight, or re-sent with the
    same bytes) keep verifying until the overlap ends.
    """
    identity = _identity(code, keys_dir)
    folder = identity.key_path.parent
    next_key, next_cert = folder / NEXT_KEY_FILE, folder / NEXT_CERT_FILE
    if not (next_key.exists() and next_cert.exists()):
        raise ConfigError(
            f"{folder}: no staged key for {code}; run cafgw keys rotate --authority {code} first"
        )
    # The staged pair must belong together, or the gateway could not start.
    staged = (
        load_private_key(next_key)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cert_key = (
        load_certificate(next_cert)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if staged != cert_key:
        raise ConfigError(f"{next_cert} does not belong to {next_key}; stage the rotation again")
    until = (now or datetime.now(UTC)) + overlap
    previous = folder / PREVIOUS_CERT_FILE
    write_private(previous, identity.cert_path.read_bytes())
    write_private(previous.with_suffix(".until"), until.isoformat().encode("ascii") + b"\n")
    # The old key is kept (0600) for the overlap only to decrypt bodies
    # encrypted to the old certificate while it was current; never to sign.
    write_private(folder / PREVIOUS_KEY_FILE, identity.key_path.read_bytes())
    # Key first, then certificate: a crash in between leaves a key whose
    # certificate is missing, which ensure_identity repairs for the same key.
    os.replace(next_key, identity.key_path)
    os.replace(next_cert, identity.cert_path)
    write_private(folder / BUNDLE_FILE, identity.cert_path.read_bytes() + previous.read_bytes())
    return Rotation(code, folder / BUNDLE_FILE, identity.cert_path, previous, until)


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key (ECDSA or RSA)."""
    return parse_private_key(_read(path), str(path))


def parse_private_key(pem: bytes, source: str = "private key") -> PrivateKey:
    """Parse PEM bytes into an ECDSA or RSA private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: not a readable unencrypted PEM private key") from exc
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise ConfigError(f"{source}: RSA keys must have at least 2048 bits")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ConfigError(f"{source}: only ECDSA and RSA keys are supported")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """Read the first X.509 certificate of a PEM file."""
    return load_certificates(path)[0]


def load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Read every X.509 certificate of a PEM file (a file may hold several)."""
    try:
        certs = x509.load_pem_x509_certificates(_read(path))
    except ValueError as exc:
        raise ConfigError(f"{path}: not a readable PEM certificate") from exc
    return tuple(certs)


def la_code_of(cert: x509.Certificate) -> str | None:
    """The LA code in a certificate subject (``serialNumber``), if any."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _identity(code: str, keys_dir: Path) -> Identity:
    # The code becomes a directory name: nothing that could climb out of keys_dir.
    if not (code.isascii() and code.isalnum()):
        raise ConfigError(f"LA code {code!r} must be ASCII letters and digits only")
    folder = keys_dir / code
    return Identity(code=code, key_path=folder / KEY_FILE, cert_path=folder / CERT_FILE)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate_pem(
    key: PrivateKey, code: str, name: str, valid_days: int, now: datetime | None
) -> bytes:
    start = (now or datetime.now(UTC)) - _BACKDATE
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cafgw"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, code),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
