"""A CSV export described by a mapping alone (``kind: csv``), both directions.

One row per record; repeated groups are numbered columns (``ACTION_{n}``).
Rows are streamed with ``adapters.csv_source``; the header is checked first, so a
missing or unknown column is one ``MalformedInputError`` naming it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from adapters.base import Result
from adapters.checks import RecordCheck
from adapters.csv_cells import neutralise
from adapters.csv_source import CsvSource
from adapters.generic.convert import Cell, RecordBuilder
from adapters.generic.mapping import GROUP_MARK, FieldRule, GenericMapping
from adapters.generic.render import LocalValue, Out, Renderer
from adapters.results import Encoder
from gateway.errors import FieldProblem, MalformedInputError
from gateway.model import Assessment


class GenericCsvAdapter:
    """Reads and writes the CSV export a ``kind: csv`` mapping describes."""

    def __init__(self, mapping: GenericMapping, known_authorities: frozenset[str]) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self.version = mapping.version
        self.authority: str | None = mapping.authority
        self._builder = RecordBuilder(mapping, known_authorities)
        self._renderer = Renderer(mapping)
        self._patterns = [
            (rule, _pattern(rule.source)) for rule in mapping.rules if GROUP_MARK in rule.source
        ]
        self._ignored_patterns = [_pattern(c) for c in mapping.coverage.ignored if GROUP_MARK in c]

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """One ``Converted`` or ``Rejected`` per data row, streamed."""
        m = self.mapping
        table = CsvSource(stream, source, m.encoding, m.max_field_chars)
        placed = self._place(table.header, source)
        for row in table.rows():
            check = RecordCheck(source, str(row.number))
            cells = [Cell(rule, n, column, row.cells[column]) for column, rule, n in placed]
            yield self._builder.build(check, cells)

    def _place(self, header: Sequence[str], source: str) -> list[tuple[str, FieldRule, int | None]]:
        """Column -> (rule, group number) for every mapped column, after checking the header."""
        m = self.mapping
        fixed = {r.source: r for r in m.rules if GROUP_MARK not in r.source}
        placed: list[tuple[str, FieldRule, int | None]] = []
        groups: dict[str, dict[int, set[str]]] = {}
        unexpected = []
        for column in header:
            if column in fixed:
                rule = fixed[column]
                placed.append((column, rule, 1 if rule.target.group else None))
            elif column in m.coverage.ignored or any(
                p.fullmatch(column) for p in self._ignored_patterns
            ):
                continue
            else:
                found = next(
                    ((r, int(x[1])) for r, p in self._patterns if (x := p.fullmatch(column))), None
                )
                if found is None:
                    unexpected.append(column)
                    continue
                rule, n = found
                placed.append((column, rule, n))
                groups.setdefault(rule.target.group or "", {}).setdefault(n, set()).add(rule.source)
        missing = [c for c in fixed if c not in header]
        for group, numbered in groups.items():
            sources = {r.source for r, _ in self._patterns if r.target.group == group}
            for n, present in sorted(numbered.items()):
                missing += [s.replace(GROUP_MARK, str(n)) for s in sorted(sources - present)]
        if missing:
            raise MalformedInputError(
                f"{source}: required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} missing from the header (mapping {m.name})"
            )
        if unexpected:
            raise MalformedInputError(
                f"{source}: column{'s' if len(unexpected) > 1 else ''} {', '.join(unexpected)} "
                f"not known to the mapping {m.name}; map or ignore "
                f"{'them' if len(unexpected) > 1 else 'it'} there"
            )
        return placed

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """The assessments as this authority's CSV export (formula cells written as text)."""
        m = self.mapping
        encoder = Encoder(m.name)
        rendered = [self._renderer.render(a, encoder) for a in assessments]
        counts = dict(m.min_groups)
        for outs in rendered:
            for out in outs:
                if GROUP_MARK in out.rule.source and out.n is not None:
                    group = out.rule.target.group or ""
                    counts[group] = max(counts.get(group, 1), out.n)
        header = self._header(counts)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(header)
        for assessment, outs in zip(assessments, rendered, strict=True):
            cells = {o.rule.field(o.n): self._text(o) for o in outs}
            row = [cells.get(column, "") for column in header]
            for column, text in zip(header, row, strict=True):
                self._encodable(text, assessment.case_ref, column, encoder)
            writer.writerow([neutralise(text) for text in row])
        encoder.raise_problems()
        return buffer.getvalue().encode(m.encoding)

    def _header(self, counts: dict[str, int]) -> list[str]:
        """The mapping's column order, each ``{n}`` group repeated as often as needed."""
        rules = {r.source: r for r in self.mapping.rules}
        out: list[str] = []
        done: set[str] = set()
        for column in self.mapping.header:
            if GROUP_MARK not in column:
                out.append(column)
                continue
            rule = rules.get(column)
            group = rule.target.group if rule else column
            if group in done or group is None:
                continue
            done.add(group)
            block = [
                c
                for c in self.mapping.header
                if GROUP_MARK in c and (rules[c].target.group if c in rules else c) == group
            ]
            for n in range(1, counts.get(group, 1) + 1):
                out.extend(c.replace(GROUP_MARK, str(n)) for c in block)
        return out

    def _text(self, out: Out) -> str:
        value: LocalValue = out.value
        if isinstance(value, bool):
            return self.mapping.true_tokens[0] if value else self.mapping.false_tokens[0]
        if isinstance(value, list):
            return self.mapping.list_separator.join(value)
        return str(value)

    def _encodable(self, text: str, record: str, column: str, encoder: Encoder) -> None:
        try:
            text.encode(self.mapping.encoding)
        except UnicodeEncodeError as exc:
            reason = f"character {exc.object[exc.start]!r} cannot be written in {exc.encoding}"
            encoder.problems.append(FieldProblem(self.mapping.name, record, column, reason, text))


def _pattern(column: str) -> re.Pattern[str]:
    before, _, after = column.partition(GROUP_MARK)
    return re.compile(re.escape(before) + r"([1-9][0-9]*)" + re.escape(after))
