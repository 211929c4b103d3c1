"""The same test on both ledgers: SQLite always, PostgreSQL with the integration tests.

``on_both`` parametrizes ``ledger_url`` (``tests/conftest.py``) for a test or a
module; the ``ledger`` fixture there opens a ``Ledger`` on it.
"""

from __future__ import annotations

import pytest

on_both = pytest.mark.parametrize(
    "ledger_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
    indirect=True,
)
