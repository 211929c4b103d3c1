"""The ``dudley-csv`` adapter: Dudley's (332) CAF register export, both directions.

A CSV file, one row per assessment, Windows-1252 and CRLF, ``dd/mm/yyyy``
dates, ``Y``/``N`` flags, numbered ``ACTION_n`` groups. The mapping and
code lists are in ``config/adapters/dudley-csv.yaml``; the pieces are
``adapters.csv_source`` (streaming, decoding), ``mapping`` (the YAML),
``rows`` (row -> canonical) and ``writer`` (canonical -> CSV).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from adapters.base import Result
from adapters.csv_source import CsvSource
from adapters.dudley.mapping import ActionPart, DudleyMapping, load_mapping
from adapters.dudley.rows import RowConverter
from adapters.dudley.writer import write_csv
from gateway.errors import MalformedInputError
from gateway.model import Assessment


class DudleyCsvAdapter:
    """Reads and writes Dudley register CSV files."""

    def __init__(self, mapping: DudleyMapping, known_authorities: frozenset[str]) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self.version = mapping.version
        self.authority: str | None = mapping.authority
        self._rows = RowConverter(mapping, known_authorities)

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """One ``Converted`` or ``Rejected`` per data row, streamed.

        Raises ``MalformedInputError`` when the file cannot be read as a
        Dudley export (encoding, header, truncated rows), possibly after
        yielding the rows before the fault.
        """
        table = CsvSource(stream, source, self.mapping.encoding, self.mapping.max_field_chars)
        groups = self.action_groups(table.header, source)
        for row in table.rows():
            yield self._rows.convert(row, source, groups)

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """The assessments as a Dudley register CSV."""
        return write_csv(self.mapping, assessments)

    def action_groups(self, header: Sequence[str], source: str) -> list[int]:
        """The action group numbers of ``header``, after checking it has every column needed."""
        m = self.mapping
        fixed = set(m.fixed_columns())
        parts: dict[int, set[ActionPart]] = {}
        unexpected: list[str] = []
        for column in header:
            if column in fixed:
                continue
            group = m.actions.group_of(column)
            if group is None:
                unexpected.append(column)
            else:
                parts.setdefault(group[1], set()).add(group[0])
        missing = [c for c in m.fixed_columns() if c not in header and c not in m.ignored]
        for n, present in sorted(parts.items()):
            missing += [m.actions.column(p, n) for p in ActionPart if p not in present]
        if missing:
            raise MalformedInputError(
                f"{source}: required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} missing from the header"
            )
        if unexpected:
            raise MalformedInputError(
                f"{source}: column{'s' if len(unexpected) > 1 else ''} {', '.join(unexpected)} "
                f"not known to the mapping {m.path.name}; map or ignore "
                f"{'them' if len(unexpected) > 1 else 'it'} there"
            )
        return sorted(parts)


def create(mapping_path: Path, known_authorities: frozenset[str]) -> DudleyCsvAdapter:
    """Build the adapter from its mapping file (``MappingError`` names a bad key)."""
    return DudleyCsvAdapter(load_mapping(mapping_path), known_authorities)
