"""``sandwell-xml``: Sandwell's FWI form XML export (``adapter`` is the entry point)."""
