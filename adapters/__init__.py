"""Local formats <-> the canonical model.

One subpackage per built-in format (``dudley``, ``wolverhampton``,
``sandwell``), the YAML-only engine (``generic``), and at this level what
they share: the adapter contract (``base``), field checks and code lists,
result building, the CSV and streaming-JSON readers, and the ``registry``.
"""
