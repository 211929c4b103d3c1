"""API keys name a person and role, expire, can be revoked and rotated (issue 13 item 8)."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.clock import Clock
from typer.testing import CliRunner

from gateway.api.auth import LEGACY_GRACE_DAYS, LEGACY_HOLDER, ApiKeys
from gateway.cli import app
from gateway.errors import AccessDeniedError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_an_issued_key_names_its_holder_and_is_stored_only_as_a_hash(tmp_path: Path) -> None:
    keys = ApiKeys(tmp_path / "keys.json")
    issued = keys.issue_key("336", holder="Jo Bloggs", holder_role="CAF coordinator", days=30)
    assert issued.key.startswith(f"cafgw_{issued.record.key_id}_")
    assert issued.key not in repr(issued)
    who = keys.authenticate(issued.key)
    assert (who.authority, who.holder, who.holder_role) == ("336", "Jo Bloggs", "CAF coordinator")
    assert who.actor.startswith("Jo Bloggs (CAF coordinator, for 336, key ")
    stored = (tmp_path / "keys.json").read_text()
    assert issued.key not in stored
    assert hashlib.sha256(issued.key.encode()).hexdigest() in stored
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


def test_a_key_stops_working_when_it_expires(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    keys = ApiKeys(tmp_path / "keys.json", clock)
    key = keys.issue("336", holder="Jo", holder_role="case system", days=1)
    keys.authenticate(key)
    clock.now += timedelta(days=1, seconds=1)
    with pytest.raises(AccessDeniedError, match="is expired"):
        keys.authenticate(key)


def test_a_key_revoked_by_another_process_is_refused_at_once(tmp_path: Path) -> None:
    served = ApiKeys(tmp_path / "keys.json")
    issued = served.issue_key("332", holder="Al", holder_role="practitioner")
    served.authenticate(issued.key)
    ApiKeys(tmp_path / "keys.json").revoke(issued.record.key_id, "left the authority")
    with pytest.raises(AccessDeniedError, match="is revoked"):
        served.authenticate(issued.key)


def test_rotation_gives_a_new_key_and_ends_the_old_one_after_the_overlap(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    keys = ApiKeys(tmp_path / "keys.json", clock)
    old = keys.issue_key("336", holder="Case system", holder_role="service", days=90)
    new = keys.rotate(old.record.key_id, timedelta(hours=2))
    assert new.record.holder == "Case system" and new.record.authority == "336"
    assert keys.get(old.record.key_id).replaced_by == new.record.key_id
    keys.authenticate(old.key)
    keys.authenticate(new.key)
    clock.now += timedelta(hours=2, seconds=1)
    with pytest.raises(AccessDeniedError, match="expired"):
        keys.authenticate(old.key)
    assert keys.authenticate(new.key).key_id == new.record.key_id
    with pytest.raises(ConfigError, match="expired"):
        keys.rotate(old.record.key_id)


def test_a_key_file_of_the_first_format_is_converted_with_a_deadline(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    legacy = "cafgw_oldstylekey"
    digest = hashlib.sha256(legacy.encode()).hexdigest()
    path.write_text(json.dumps({digest: {"authority": "336", "role": "authority"}}))
    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    keys = ApiKeys(path, clock)
    who = keys.authenticate(legacy)
    assert (who.authority, who.holder) == ("336", LEGACY_HOLDER)
    assert json.loads(path.read_text())["version"] == 2
    clock.now += timedelta(days=LEGACY_GRACE_DAYS, seconds=1)
    with pytest.raises(AccessDeniedError, match="expired"):
        keys.authenticate(legacy)


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"CAFGW_API_KEYS_FILE": str(tmp_path / "keys.json")}
    result = runner.invoke(app, [*args, "--config", str(ROOT / "config")], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_issues_lists_and_revokes_keys_by_id(tmp_path: Path) -> None:
    code, _, err = _cli(tmp_path, "api-keys", "issue", "--authority", "336")
    assert code != 0 and "--holder" in err
    code, out, err = _cli(
        tmp_path, "api-keys", "issue", "--authority", "336", "--holder", "Jo Bloggs",
        "--role", "CAF coordinator", "--days", "10",
    )  # fmt: skip
    assert code == 0, err
    key = out.strip()
    code, out, _ = _cli(tmp_path, "api-keys", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["holder"], listed["holder_role"], listed["state"]) == (
        "Jo Bloggs",
        "CAF coordinator",
        "active",
    )
    assert key not in out
    code, out, err = _cli(tmp_path, "api-keys", "revoke", listed["key_id"], "--reason", "test")
    assert code == 0, err
    with pytest.raises(AccessDeniedError, match="revoked"):
        ApiKeys(tmp_path / "keys.json").authenticate(key)
