"""Signing identities: key files, certificate subjects, no silent overwrite."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.envelope.keys import (
    ensure_identity,
    generate_identity,
    la_code_of,
    load_certificate,
    load_private_key,
)
from gateway.errors import ConfigError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_private_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    identity = generate_identity("332", "Dudley", tmp_path)
    assert mode(identity.key_path) == 0o600
    assert mode(identity.key_path.parent) == 0o700
    assert identity.key_path == tmp_path / "332" / "key.pem"
    assert identity.cert_path == tmp_path / "332" / "cert.pem"


def test_the_key_is_ecdsa_p256_and_matches_the_certificate(tmp_path: Path) -> None:
    identity = generate_identity("332", "Dudley", tmp_path)
    key = load_private_key(identity.key_path)
    cert = load_certificate(identity.cert_path)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert cert.public_key() == key.public_key()


def test_the_certificate_subject_names_the_authority_and_its_la_code(tmp_path: Path) -> None:
    cert = load_certificate(generate_identity("336", "Wolverhampton", tmp_path).cert_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Wolverhampton"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "cafgw"
    assert la_code_of(cert) == "336"
    assert cert.issuer == cert.subject


def test_the_certificate_validity_follows_now_and_valid_days(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = load_certificate(
        generate_identity("333", "Sandwell", tmp_path, valid_days=30, now=now).cert_path
    )
    assert cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)


def test_an_existing_key_is_not_overwritten_without_force(tmp_path: Path) -> None:
    identity = generate_identity("332", "Dudley", tmp_path)
    before = identity.key_path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        generate_identity("332", "Dudley", tmp_path)
    assert identity.key_path.read_bytes() == before


def test_force_replaces_the_key_and_keeps_it_private(tmp_path: Path) -> None:
    identity = generate_identity("332", "Dudley", tmp_path)
    before = identity.key_path.read_bytes()
    generate_identity("332", "Dudley", tmp_path, force=True)
    assert identity.key_path.read_bytes() != before
    assert mode(identity.key_path) == 0o600
    # No temporary file is left behind by the atomic replace.
    assert sorted(p.name for p in identity.key_path.parent.iterdir()) == ["cert.pem", "key.pem"]


def test_ensure_identity_creates_once_and_then_keeps_the_key(tmp_path: Path) -> None:
    first = ensure_identity("332", "Dudley", tmp_path)
    key = first.key_path.read_bytes()
    second = ensure_identity("332", "Dudley", tmp_path)
    assert second == first
    assert second.key_path.read_bytes() == key


def test_ensure_identity_reissues_a_missing_certificate_for_the_same_key(tmp_path: Path) -> None:
    identity = ensure_identity("332", "Dudley", tmp_path)
    identity.cert_path.unlink()
    ensure_identity("332", "Dudley", tmp_path)
    cert = load_certificate(identity.cert_path)
    assert cert.public_key() == load_private_key(identity.key_path).public_key()


def test_ensure_identity_refuses_a_certificate_whose_key_is_lost(tmp_path: Path) -> None:
    identity = ensure_identity("332", "Dudley", tmp_path)
    identity.key_path.unlink()
    with pytest.raises(ConfigError, match=r"key\.pem is missing"):
        ensure_identity("332", "Dudley", tmp_path)


def test_an_la_code_that_could_escape_the_keys_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="letters and digits"):
        generate_identity("../332", "Dudley", tmp_path)


def test_an_unreadable_key_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match=str(bad)):
        load_private_key(bad)
