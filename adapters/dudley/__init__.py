"""``dudley-csv``: Dudley's CAF register CSV export (``adapter`` is the entry point)."""
