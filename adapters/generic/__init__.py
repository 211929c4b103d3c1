"""The YAML-only engine: a CSV or JSON export described by a mapping file alone.

``adapter`` builds the adapter a ``kind: csv`` / ``kind: json`` mapping describes.
"""
