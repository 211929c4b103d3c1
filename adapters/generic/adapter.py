"""Build a generic adapter (``kind: csv`` or ``kind: json``) from its mapping file."""

from __future__ import annotations

from pathlib import Path

from adapters.base import Adapter
from adapters.codelists import MappingFile, read_mapping_file
from adapters.generic.csv_adapter import GenericCsvAdapter
from adapters.generic.json_adapter import GenericJsonAdapter
from adapters.generic.mapping import load_generic
from gateway.errors import MappingError


def from_mapping(file: MappingFile, known_authorities: frozenset[str]) -> Adapter:
    """The adapter a parsed generic mapping describes (``MappingError`` names a bad key)."""
    mapping = load_generic(file)
    if mapping.kind == "csv":
        return GenericCsvAdapter(mapping, known_authorities)
    return GenericJsonAdapter(mapping, known_authorities)


def create(mapping_path: Path, known_authorities: frozenset[str]) -> Adapter:
    """The adapter of ``config/adapters/<name>.yaml``; its ``name`` must be the file's name."""
    file = read_mapping_file(mapping_path)
    adapter = from_mapping(file, known_authorities)
    if adapter.name != mapping_path.stem:
        raise MappingError(
            f"{mapping_path}: name: {adapter.name!r} must match the file name "
            f"({mapping_path.stem}.yaml)"
        )
    return adapter
