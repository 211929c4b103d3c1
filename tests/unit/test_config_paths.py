"""Where the paths named in the configuration point (issue 18).

A relative path in a configuration file is read against that file's own
folder; one from the environment against the current directory; a default
against the configuration directory. ``secrets_dir`` gathers an authority's
keys and secrets in one directory that every replica mounts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.envelope.keys import generate_identity
from gateway.envelope.trust import TrustStore
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
REGION = yaml.safe_load((ROOT / "config" / "authorities.yaml").read_text(encoding="utf-8"))


def _config(
    folder: Path, gateway: dict[str, object], region: dict[str, object] | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text(yaml.safe_dump(gateway), encoding="utf-8")
    (folder / "authorities.yaml").write_text(yaml.safe_dump(region or REGION), encoding="utf-8")
    return folder


def test_relative_paths_in_gateway_yaml_are_read_against_its_own_folder(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "dudley",
        {
            "hosted": ["332"],
            "keys_dir": "keys",
            "api_keys_file": "../shared/api-keys.json",
            "database": {"url": "sqlite:///var/ledger.db"},
            "peers_dir": "pinned",
            "policy": {"existence_key_file": "secrets/existence.key"},
        },
    )
    settings = load_settings(config, env={})
    assert settings.keys_dir == config / "keys"
    assert settings.api_keys_file == config / "../shared/api-keys.json"
    assert settings.database.url == f"sqlite:///{config / 'var' / 'ledger.db'}"
    assert settings.peers_dir == config / "pinned"
    assert settings.policy.existence_key_file == config / "secrets" / "existence.key"
    assert settings.adapters_dir == config / "adapters"


def test_a_relative_path_from_the_environment_is_read_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path / "config", {"hosted": ["332"], "keys_dir": "keys"})
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        config,
        env={
            "CAFGW_DATABASE__URL": "sqlite:///var/la-test.db",
            "CAFGW_KEYS_DIR": "elsewhere/keys",
        },
    )
    assert settings.database.url == f"sqlite:///{tmp_path / 'var' / 'la-test.db'}"
    assert settings.keys_dir == tmp_path / "elsewhere" / "keys"


def test_paths_in_authorities_yaml_are_read_against_that_files_folder(tmp_path: Path) -> None:
    region = yaml.safe_load(yaml.safe_dump(REGION))
    region["authorities"]["336"]["connector"] = {
        "kind": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "hmac_secret_file": "secrets/336-webhook.secret",
    }
    region["authorities"]["333"]["connector"] = {"kind": "file", "directory": "drop/333"}
    region["authorities"]["330"]["certificate"] = "certs/330.pem"
    (tmp_path / "authorities.yaml").write_text(yaml.safe_dump(region), encoding="utf-8")
    config = tmp_path / "gw"
    config.mkdir()
    (config / "gateway.yaml").write_text(
        yaml.safe_dump({"hosted": ["336"], "authorities_file": "../authorities.yaml"}),
        encoding="utf-8",
    )
    directory = load_settings(config, env={}).directory
    assert directory.get("336").connector.hmac_secret_file == str(
        tmp_path / "secrets" / "336-webhook.secret"
    )
    assert directory.get("333").connector.directory == str(tmp_path / "drop" / "333")
    assert directory.get("330").certificate == str(tmp_path / "certs" / "330.pem")


def test_secrets_dir_holds_the_keys_api_keys_and_existence_key_unless_named_on_their_own(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path / "dudley", {"hosted": ["332"], "secrets_dir": "/srv/cafgw/332"})
    settings = load_settings(config, env={})
    assert settings.secrets_dir == Path("/srv/cafgw/332")
    assert settings.keys_dir == Path("/srv/cafgw/332/keys")
    assert settings.api_keys_file == Path("/srv/cafgw/332/api-keys.json")
    assert settings.policy.existence_key_file == Path("/srv/cafgw/332/regional-existence.key")
    named = load_settings(
        config, env={"CAFGW_SECRETS_DIR": "/run/secrets/332", "CAFGW_KEYS_DIR": "/keys"}
    )
    assert named.keys_dir == Path("/keys")
    assert named.api_keys_file == Path("/run/secrets/332/api-keys.json")


def test_the_projects_own_config_keeps_its_state_in_the_repositorys_var_folder() -> None:
    settings = load_settings(ROOT / "config", env={})
    var = ROOT / "var"
    assert settings.keys_dir.resolve() == var / "keys"
    assert settings.api_keys_file.resolve() == var / "api-keys.json"
    assert Path(settings.database.url.removeprefix("sqlite:///")).resolve() == var / "ledger.db"
    assert (
        settings.policy.existence_key_file.resolve() == var / "secrets" / "regional-existence.key"
    )
    assert settings.adapters_dir == ROOT / "config" / "adapters"


def test_a_certificate_in_peers_dir_is_pinned_for_its_authority(tmp_path: Path) -> None:
    config = _config(tmp_path / "dudley", {"hosted": ["332"], "keys_dir": "keys"})
    generate_identity("332", "Dudley", config / "keys")
    elsewhere = generate_identity("336", "Wolverhampton", tmp_path / "wolverhampton-keys")
    (config / "peers").mkdir()
    (config / "peers" / "336.pem").write_bytes(elsewhere.cert_path.read_bytes())
    store = TrustStore.from_settings(load_settings(config, env={}))
    assert len(store.certificates_for("336")) == 1
    assert len(store.certificates_for("332")) == 1
