"""Listing commands answer in JSON for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from gateway.envelope.keys import ensure_identity

runner = CliRunner()


def test_adapters_list_in_json_names_every_built_in_adapter() -> None:
    result = runner.invoke(app, ["adapters", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {a["name"]: a for a in json.loads(result.output)}
    assert {"dudley-csv", "wolverhampton-json", "sandwell-xml"} <= set(listed)
    assert listed["sandwell-xml"]["authority"] == "333"


def test_keys_expiry_in_json_lists_a_certificate_ending_soon_and_exits_1(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    soon = datetime.now(UTC) - timedelta(days=800)  # an 825-day certificate with 25 days left
    ensure_identity("333", "Sandwell", keys, now=soon)
    result = runner.invoke(app, ["keys", "expiry", "--json"], env={"CAFGW_KEYS_DIR": str(keys)})
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.output)
    assert entry["authority"] == "333"
    assert 24 <= entry["days_left"] <= 25
