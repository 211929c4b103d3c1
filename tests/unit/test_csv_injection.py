"""Issue 13, item 4: a received record's cells that a spreadsheet would run as a formula
reach a local CSV file as text, through GET /v1/inbox?format=local, in every CSV writer;
and the quote the gateway adds reads back off (the round trip)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support.api_attacks import FORMULA_CELLS, formula_region, served_local

from adapters.csv_cells import FORMULA_START, neutralise, restore
from adapters.csv_source import CsvSource

pytestmark = pytest.mark.timeout(120)


def test_formula_cells_reach_every_local_csv_format_as_text(tmp_path: Path) -> None:
    client, keys = formula_region(tmp_path)

    for authority, encoding in (("336", "cp1252"), ("333", "utf-8")):
        item, data = served_local(client, keys, authority, encoding)
        assert item["format"] == "local" and item["content_type"].startswith("text/csv"), item
        cells = [cell for row in csv.reader(io.StringIO(data)) for cell in row]
        for text in FORMULA_CELLS.values():
            assert "'" + text in cells, (authority, text, data)
        assert not [c for c in cells if c.startswith(FORMULA_START)], (authority, data)
        # Read back by the gateway's own CSV reader, each cell is the sender's text again.
        source = CsvSource(io.BytesIO(data.encode(encoding)), "served.csv", encoding)
        read = {v for row in source.rows() for v in row.cells.values()}
        assert set(FORMULA_CELLS.values()) <= read, authority


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+44 121", "-", "@x", "\tx", "\rx", "'=1", "''+2", "'", "'quoted'", "plain", ""],
)
def test_neutralising_a_cell_is_undone_exactly_by_reading_it(text: str) -> None:
    cell = neutralise(text)
    assert not cell.startswith(FORMULA_START)
    assert restore(cell) == text
