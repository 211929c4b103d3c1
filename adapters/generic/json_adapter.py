"""A JSON export described by a mapping alone (``kind: json``), both directions.

The export is one object whose ``records`` key holds the record array;
records are streamed one at a time (``adapters.json_stream``). Mapped paths are
dotted, with ``[]`` for a list step (``episodes[].plan[].due``). A value
at a path the mapping neither maps nor ignores rejects its record, naming
the path: nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from adapters.base import Rejected, Result
from adapters.checks import RecordCheck
from adapters.generic.convert import Cell, RecordBuilder
from adapters.generic.mapping import GenericMapping
from adapters.generic.render import Renderer
from adapters.json_stream import iter_export
from adapters.results import Encoder
from gateway.errors import FieldProblem, MalformedInputError
from gateway.model import Assessment


class GenericJsonAdapter:
    """Reads and writes the JSON export a ``kind: json`` mapping describes."""

    def __init__(self, mapping: GenericMapping, known_authorities: frozenset[str]) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self.version = mapping.version
        self.authority: str | None = mapping.authority
        self._builder = RecordBuilder(mapping, known_authorities)
        self._renderer = Renderer(mapping)
        self._records = mapping.records or ""
        self._by_path = {r.source: r for r in mapping.rules}
        case_rule = mapping.rule_for("Assessment.case_ref")
        self._case_key = self._relative(case_rule.source).split(".") if case_rule else []

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """One result per element of the record array; anything else unmapped is malformed."""
        seen = False
        for entry in iter_export(
            stream, source, self._records, max_value_chars=self.mapping.max_field_chars
        ):
            if entry.key == self._records:
                seen = True
                if entry.index is not None:
                    yield self._record(entry.value, entry.index, source)
            elif entry.value is not None and not self.mapping.coverage.covers(entry.key):
                raise MalformedInputError(
                    f"{source}: top-level key {entry.key!r} is not in the mapping "
                    f"{self.mapping.name}; map or ignore it there"
                )
        if not seen:
            raise MalformedInputError(
                f"{source}: not a {self.mapping.name} export: no {self._records!r} list"
            )

    def _record(self, value: object, index: int, source: str) -> Result:
        fallback = f"{self._records}[{index}]"
        if not isinstance(value, dict):
            problem = FieldProblem(source, fallback, "", "a record must be an object")
            return Rejected(source, fallback, (problem,))
        case = _dig(value, self._case_key)
        record = case.strip() if isinstance(case, str) and case.strip() else fallback
        check = RecordCheck(source, record)
        cells: list[Cell] = []
        self._walk(value, f"{self._records}[]", "", (), check, cells)
        return self._builder.build(check, cells)

    def _walk(
        self,
        value: object,
        pattern: str,
        where: str,
        numbers: tuple[int, ...],
        check: RecordCheck,
        cells: list[Cell],
    ) -> None:
        rule = self._by_path.get(pattern)
        if rule is not None:
            n = numbers[0] if rule.target.group is not None and numbers else None
            cells.append(Cell(rule, n, where, value))
            return
        if self.mapping.coverage.covers(pattern):
            return  # deliberately ignored, with everything under it
        if isinstance(value, dict):
            for key, item in value.items():
                step = f"{where}.{key}" if where else key
                self._walk(item, f"{pattern}.{key}", step, numbers, check, cells)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._walk(item, f"{pattern}[]", f"{where}[{i}]", (*numbers, i + 1), check, cells)
        elif value is not None and value != "":
            shown = value if isinstance(value, str) else json.dumps(value)
            check.add(
                where,
                f"not in the mapping {self.mapping.name}; map or ignore {pattern} there",
                str(shown)[:60],
            )

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """The assessments as this authority's JSON export."""
        encoder = Encoder(self.mapping.name)
        records = []
        for assessment in assessments:
            record: dict[str, Any] = {}
            for out in self._renderer.render(assessment, encoder):
                _place(record, self._relative(out.rule.source), out.n, out.value)
            records.append(record)
        encoder.raise_problems()
        # The mapping only allows UTF-8 for JSON (what json_stream reads).
        text = json.dumps({self._records: records}, ensure_ascii=False, indent=2) + "\n"
        return text.encode(self.mapping.encoding)

    def _relative(self, source: str) -> str:
        return source.removeprefix(f"{self._records}[].")


def _dig(value: object, keys: list[str]) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _place(record: dict[str, Any], path: str, n: int | None, value: object) -> None:
    """Set ``value`` at ``path`` (``a.b[].c``), member ``n`` of the one list step."""
    if "[]" in path and n is not None:
        head, _, rest = path.partition("[]")
        items = _container(record, head.split("."), list)
        while len(items) < n:
            items.append({})
        target: dict[str, Any] = items[n - 1]
        keys = rest.removeprefix(".").split(".")
    else:
        target, keys = record, path.split(".")
    holder = _container(target, keys[:-1], dict)
    holder[keys[-1]] = value


def _container(root: dict[str, Any], keys: list[str], kind: type) -> Any:
    """The object (or, last, the list) at ``keys`` under ``root``, made if absent."""
    node: Any = root
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        node = node.setdefault(key, kind() if last else {})
    return node
