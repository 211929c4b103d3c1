"""Every database key read from the configuration reaches the gateway.

``load_settings`` once rebuilt the database settings from the URL alone (to
read a relative SQLite path against the config folder), so the pool sizes and
the poll intervals set in ``gateway.yaml`` or the environment were silently
replaced by their defaults.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gateway.settings import DatabaseSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
URL = "postgresql+psycopg://gw@db.example:5432/ledger"
# A value unlike each key's default (and valid for it).
CHANGED = {
    "pool_size": 3,
    "max_overflow": 1,
    "fallback_poll_s": 7.5,
    "job_poll_s": 0.5,
    "outbox_lease_s": 50.0,
}
KEYS = [name for name in DatabaseSettings.model_fields if name != "url"]


def test_every_database_key_but_the_url_has_a_changed_value_here() -> None:
    # A new key must be added to CHANGED, so the tests below cover it.
    assert sorted(CHANGED) == sorted(KEYS)
    defaults = DatabaseSettings()
    assert all(getattr(defaults, key) != value for key, value in CHANGED.items())


@pytest.mark.parametrize("key", KEYS)
def test_a_database_key_set_in_gateway_yaml_survives_loading(tmp_path: Path, key: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    data = yaml.safe_load((config / "gateway.yaml").read_text(encoding="utf-8"))
    data["database"] = {**(data.get("database") or {}), "url": URL, key: CHANGED[key]}
    (config / "gateway.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")

    database = load_settings(config, env={}).database

    assert getattr(database, key) == CHANGED[key]
    assert database.url == URL


@pytest.mark.parametrize("key", KEYS)
def test_a_database_key_set_in_the_environment_survives_loading(key: str) -> None:
    env = {f"CAFGW_DATABASE__{key.upper()}": str(CHANGED[key])}

    database = load_settings(ROOT / "config", env=env).database

    assert getattr(database, key) == CHANGED[key]


def test_a_relative_sqlite_ledger_is_still_read_against_the_config_folder() -> None:
    database = load_settings(
        ROOT / "config",
        env={},
        overrides={"database": {"url": "sqlite:///var/x.db", "pool_size": 4}},
    ).database

    assert database.url == f"sqlite:///{ROOT / 'config' / 'var' / 'x.db'}"
    assert database.pool_size == 4
