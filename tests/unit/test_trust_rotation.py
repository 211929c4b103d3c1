"""Trust: regional CA mode, expiry warnings, and key rotation with an overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers_xml import build_envelope
from typer.testing import CliRunner

from gateway.cli import app
from gateway.envelope.keys import (
    activate_rotation,
    generate_identity,
    load_certificate,
    stage_rotation,
)
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, TrustError
from gateway.settings import load_directory

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
DIRECTORY = load_directory(ROOT / "config" / "authorities.yaml")


def _name(cn: str, code: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if code:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, code))
    return x509.Name(attrs)


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("West Midlands regional CA"))
        .issuer_name(_name("West Midlands regional CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issued(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], code: str, *, days: int = 365
) -> Signer:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Authority {code}", code))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Signer(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def _verifier(store: TrustStore, now: datetime = NOW) -> Verifier:
    return Verifier(store, max_bytes=1_000_000, max_depth=64, clock=lambda: now)


def test_a_certificate_issued_by_the_regional_ca_for_the_sender_verifies() -> None:
    ca = _ca()
    store = TrustStore.from_mapping({}, regional_ca=ca[1])
    data = _issued(ca, "332").sign(build_envelope(sender="332", created_at=NOW))
    assert _verifier(store).verify(data).sender == "332"


def test_a_ca_certificate_naming_another_la_code_does_not_verify_for_the_sender() -> None:
    ca = _ca()
    store = TrustStore.from_mapping({}, regional_ca=ca[1])
    data = _issued(ca, "333").sign(build_envelope(sender="332", created_at=NOW))
    with pytest.raises(TrustError, match=r"unknown sender '332'.*regional CA"):
        _verifier(store).verify(data)


def test_a_certificate_from_another_ca_is_not_trusted() -> None:
    store = TrustStore.from_mapping({}, regional_ca=_ca()[1])
    data = _issued(_ca(), "332").sign(build_envelope(sender="332", created_at=NOW))
    with pytest.raises(TrustError):
        _verifier(store).verify(data)


def test_an_expired_ca_issued_certificate_is_not_trusted() -> None:
    ca = _ca()
    store = TrustStore.from_mapping({}, regional_ca=ca[1])
    data = _issued(ca, "332", days=10).sign(build_envelope(sender="332", created_at=NOW))
    with pytest.raises(TrustError):
        _verifier(store, NOW + timedelta(days=11)).verify(data)


def test_certificates_ending_within_the_warning_window_are_reported(tmp_path: Path) -> None:
    soon = generate_identity("332", "Dudley", tmp_path, valid_days=20, now=NOW)
    later = generate_identity("336", "Wolverhampton", tmp_path, valid_days=400, now=NOW)
    store = TrustStore.from_mapping(
        {"332": [load_certificate(soon.cert_path)], "336": [load_certificate(later.cert_path)]}
    )
    warnings = store.expiring(NOW, 30)
    assert [(w.authority, w.days_left, w.retiring) for w in warnings] == [("332", 19, False)]


def test_a_rotation_stages_then_activates_with_an_overlap_in_which_both_keys_verify(
    tmp_path: Path,
) -> None:
    old = generate_identity("332", "Dudley", tmp_path, now=NOW)
    old_signer = Signer.from_files(old.key_path, old.cert_path)
    staged = stage_rotation("332", "Dudley", tmp_path, now=NOW)
    bundle = staged.bundle_path.read_bytes()
    assert bundle.count(b"BEGIN CERTIFICATE") == 2
    # Staged: the current key still signs; the next certificate is already trusted.
    store = TrustStore.from_directory(DIRECTORY, tmp_path)
    assert len(store.certificates_for("332")) == 2
    done = activate_rotation("332", tmp_path, overlap=timedelta(days=14), now=NOW)
    new_signer = Signer.from_files(old.key_path, old.cert_path)
    assert new_signer.certificate != old_signer.certificate
    store = TrustStore.from_directory(DIRECTORY, tmp_path)
    in_flight = old_signer.sign(build_envelope(sender="332", created_at=NOW))
    fresh = new_signer.sign(build_envelope(sender="332", created_at=NOW))
    during = _verifier(store, NOW + timedelta(days=13))
    assert during.verify(in_flight).sender == during.verify(fresh).sender == "332"
    after = _verifier(store, NOW + timedelta(days=15))
    assert after.verify(fresh).sender == "332"
    with pytest.raises(TrustError):
        after.verify(in_flight)
    assert done.previous_until == NOW + timedelta(days=14)
    warnings = store.expiring(NOW, 30)
    assert [(w.authority, w.retiring) for w in warnings] == [("332", True)]
    assert (tmp_path / "332" / "key-previous.pem").stat().st_mode & 0o077 == 0


def test_activating_without_a_staged_key_is_a_config_error(tmp_path: Path) -> None:
    generate_identity("332", "Dudley", tmp_path, now=NOW)
    with pytest.raises(ConfigError, match="no staged key"):
        activate_rotation("332", tmp_path, overlap=timedelta(days=1))


def test_cafgw_keys_rotate_refuses_an_overlap_shorter_than_the_retry_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAFGW_KEYS_DIR", str(tmp_path / "keys"))
    generate_identity("332", "Dudley", tmp_path / "keys")
    runner = CliRunner()
    config = ["--config", str(ROOT / "config")]
    staged = runner.invoke(app, ["keys", "rotate", "--authority", "332", *config])
    assert staged.exit_code == 0, staged.output
    assert "bundle.pem" in staged.output.replace("\n", "")
    short = runner.invoke(
        app,
        ["keys", "rotate", "--authority", "332", "--activate", "--overlap-days", "0.001", *config],
    )
    assert short.exit_code == 2
    assert "shorter than the retry budget" in " ".join(short.output.split())
    done = runner.invoke(app, ["keys", "rotate", "--authority", "332", "--activate", *config])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "keys" / "332" / "cert-previous.until").is_file()
