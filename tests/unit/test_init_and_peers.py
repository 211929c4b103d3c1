"""``cafgw init`` makes one authority's gateway directory; ``cafgw peers`` exchanges
certificates between two such directories (issue 18, a recipe without Docker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from gateway.api.auth import ApiKeys
from gateway.cli import app
from gateway.envelope.keys import generate_identity
from gateway.envelope.trust import TrustStore
from gateway.private_files import is_private
from gateway.settings import load_settings

pytestmark = pytest.mark.timeout(60)


def cafgw(*argv: str) -> Result:
    return CliRunner().invoke(app, list(argv), env={"COLUMNS": "200"})


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    dudley, wolverhampton = tmp_path / "dudley", tmp_path / "wolverhampton"
    for code, folder, port in (("332", dudley, "8332"), ("336", wolverhampton, "8336")):
        made = cafgw("init", "--authority", code, "--port", port, str(folder))
        assert made.exit_code == 0, made.output
    return dudley, wolverhampton


def test_init_makes_a_private_gateway_directory_that_is_not_the_regional_host(
    two: tuple[Path, Path],
) -> None:
    dudley, _ = two
    settings = load_settings(dudley, env={})
    assert settings.hosted == ("332",)
    assert settings.api.port == 8332
    assert settings.disputes.consume_regional is False
    assert settings.secrets_dir == dudley / "secrets"
    assert settings.keys_dir == dudley / "secrets" / "keys"
    assert settings.database.url == f"sqlite:///{dudley / 'var' / 'ledger.db'}"
    assert sorted(p.name for p in settings.adapters_dir.iterdir()) == ["dudley-csv.yaml"]
    for private in (
        dudley / "gateway.yaml",
        dudley / "secrets",
        dudley / "var",
        settings.keys_dir / "332" / "key.pem",
        settings.keys_dir / "audit-chain.key",
        settings.api_keys_file,
        dudley / "secrets" / "local-system.key",
    ):
        assert is_private(private), private
    # Its own certificate is trusted; no peer is, until one is pinned.
    store = TrustStore.from_settings(settings)
    assert len(store.certificates_for("332")) == 1
    assert store.codes() == {"332"}


def test_the_local_systems_api_key_is_written_to_a_file_and_never_printed(
    tmp_path: Path,
) -> None:
    made = cafgw("init", "--authority", "336", str(tmp_path / "w"))
    assert made.exit_code == 0, made.output
    key_file = tmp_path / "w" / "secrets" / "local-system.key"
    key = key_file.read_text(encoding="ascii").strip()
    assert key not in made.output
    assert str(key_file) in made.output
    caller = ApiKeys(tmp_path / "w" / "secrets" / "api-keys.json").authenticate(key)
    assert caller.authority == "336" and not caller.is_admin
    assert "City of Wolverhampton Council" in caller.actor


def test_init_never_overwrites_a_gateway_directory(two: tuple[Path, Path]) -> None:
    dudley, _ = two
    key = (dudley / "secrets" / "keys" / "332" / "key.pem").read_bytes()
    again = cafgw("init", "--authority", "332", str(dudley))
    assert again.exit_code == 2
    assert "never overwrites" in again.output
    assert (dudley / "secrets" / "keys" / "332" / "key.pem").read_bytes() == key


def test_only_a_gateway_made_as_the_regional_host_consumes_the_regional_queue(
    tmp_path: Path,
) -> None:
    made = cafgw("init", "--authority", "330", "--regional-host", str(tmp_path / "b"))
    assert made.exit_code == 0, made.output
    assert load_settings(tmp_path / "b", env={}).disputes.consume_regional is True


def test_exported_certificates_pinned_both_ways_are_trusted_with_the_same_fingerprint(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    dudley, wolverhampton = two
    out = tmp_path / "dudley-332.pem"
    exported = cafgw("peers", "export", "--config", str(dudley), "--out", str(out))
    assert exported.exit_code == 0, exported.output
    pinned = cafgw("peers", "add", "332", str(out), "--config", str(wolverhampton))
    assert pinned.exit_code == 0, pinned.output
    fingerprint = next(line.strip() for line in exported.output.splitlines() if "SHA256" in line)
    assert fingerprint in pinned.output
    assert "PRIVATE" not in out.read_text(encoding="ascii")
    store = TrustStore.from_settings(load_settings(wolverhampton, env={}))
    assert store.codes() == {"332", "336"}
    pem = store.certificates_for("332")[0].public_bytes(serialization.Encoding.PEM)
    assert pem == out.read_bytes()


@pytest.mark.parametrize(
    ("offered", "code", "refusal"),
    [
        ("key", "332", "holds a private key"),
        ("cert", "333", "the certificate is for LA 332"),
        ("cert", "336", "336 is hosted by this gateway"),
        ("text", "332", "not a PEM certificate"),
        ("cert", "999", "not in the region directory"),
    ],
)
def test_peers_add_refuses_what_must_not_be_pinned(
    two: tuple[Path, Path], tmp_path: Path, offered: str, code: str, refusal: str
) -> None:
    dudley, wolverhampton = two
    identity = dudley / "secrets" / "keys" / "332"
    source = {
        "key": identity / "key.pem",
        "cert": identity / "cert.pem",
        "text": dudley / "gateway.yaml",
    }[offered]
    refused = cafgw("peers", "add", code, str(source), "--config", str(wolverhampton))
    assert refused.exit_code == 2
    assert refusal in refused.output
    assert not list((wolverhampton / "peers").iterdir())


def test_an_expired_certificate_is_not_pinned(two: tuple[Path, Path], tmp_path: Path) -> None:
    _, wolverhampton = two
    old = generate_identity(
        "332", "Dudley", tmp_path / "old", valid_days=1, now=datetime.now(UTC) - timedelta(days=3)
    )
    refused = cafgw("peers", "add", "332", str(old.cert_path), "--config", str(wolverhampton))
    assert refused.exit_code == 2
    assert "expired" in refused.output


def test_peers_export_without_out_writes_the_certificate_alone_on_stdout(
    two: tuple[Path, Path],
) -> None:
    dudley, _ = two
    exported = CliRunner().invoke(app, ["peers", "export", "--config", str(dudley)])
    assert exported.exit_code == 0, exported.output
    cert = (dudley / "secrets" / "keys" / "332" / "cert.pem").read_text(encoding="ascii")
    assert exported.stdout == cert
    assert "332: SHA256 " in exported.stderr
