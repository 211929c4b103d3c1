"""Mapping files and the code lists in them.

An adapter's mapping (``config/adapters/<name>.yaml``) holds its code lists
(local code -> canonical value) and the list of source fields it maps or
deliberately ignores. This module reads both, checking every canonical
value against its type at load time so that a bad mapping stops the
gateway at start, with the key named, rather than a record later.

A code list in YAML::

    gender:
      prefix: ""            # optional: every local code starts with it (``ETH.``)
      decode: {M: MALE, F: FEMALE, U: NOT_KNOWN}
      encode: {OTHER: U}    # optional: canonical -> local where decode is not 1:1
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import yaml

from gateway.errors import MappingError

T = TypeVar("T", bound=str)


@dataclass(frozen=True)
class CodeList(Generic[T]):
    """One local code list, both directions (decode local codes, encode canonical values)."""

    name: str
    decode_map: Mapping[str, T]
    encode_map: Mapping[T, str]
    prefix: str = ""

    def decode(self, local: str) -> T | None:
        """The canonical value of a local code, or ``None`` when the code is unknown."""
        if not local.startswith(self.prefix):
            return None
        return self.decode_map.get(local[len(self.prefix) :])

    def encode(self, canonical: T) -> str | None:
        """The local code of a canonical value, or ``None`` when this list has none."""
        local = self.encode_map.get(canonical)
        return None if local is None else self.prefix + local

    def known(self) -> list[str]:
        """The local codes this list accepts (for error messages)."""
        return [self.prefix + code for code in self.decode_map]


def load_codelist(raw: object, name: str, kind: Callable[[str], T], where: str) -> CodeList[T]:
    """Build the code list ``name`` from its YAML value; ``kind`` makes a canonical value."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("decode"), Mapping):
        raise MappingError(f"{where}: codes.{name} must be a mapping with a 'decode' mapping")
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str):
        raise MappingError(f"{where}: codes.{name}.prefix must be a string")

    def canonical(value: object, key: str) -> T:
        try:
            return kind(str(value))
        except ValueError:
            raise MappingError(
                f"{where}: {key}: {value!r} is not a canonical {name} value"
            ) from None

    decode = {
        str(local): canonical(value, f"codes.{name}.decode.{local}")
        for local, value in raw["decode"].items()
    }
    encode: dict[T, str] = {}
    for local, value in decode.items():
        encode.setdefault(value, local)
    overrides = raw.get("encode", {})
    if not isinstance(overrides, Mapping):
        raise MappingError(f"{where}: codes.{name}.encode must be a mapping")
    for value, local in overrides.items():
        encode[canonical(value, f"codes.{name}.encode.{value}")] = str(local)
    return CodeList(name, MappingProxyType(decode), MappingProxyType(encode), prefix)


@dataclass(frozen=True)
class FieldCoverage:
    """The source field paths a mapping maps (to what) and ignores (and why)."""

    mapped: Mapping[str, str]
    ignored: Mapping[str, str]
    separator: str = "."

    def covers(self, path: str) -> bool:
        """Whether ``path`` is mapped or ignored (``*`` matches within one step)."""
        return any(self._pattern(p).fullmatch(path) for p in (*self.mapped, *self.ignored))

    def _pattern(self, pattern: str) -> re.Pattern[str]:
        step = f"[^{re.escape(self.separator)}]*"
        return re.compile(re.escape(pattern).replace(r"\*", step))


@dataclass(frozen=True)
class MappingFile:
    """A parsed mapping file: its raw YAML, where it came from, and accessors."""

    path: Path
    data: Mapping[str, Any]

    def text(self, key: str, default: str | None = None) -> str:
        """A required string setting (or ``default``)."""
        value = self.data.get(key, default)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise MappingError(f"{self.path}: {key} must be a string")
        return str(value)

    def number(self, key: str, default: int) -> int:
        """An integer setting (or ``default``)."""
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise MappingError(f"{self.path}: {key} must be a positive integer")
        return value

    def codes(self, name: str, kind: Callable[[str], T]) -> CodeList[T]:
        """The code list ``codes.<name>``."""
        codes = self.data.get("codes")
        if not isinstance(codes, Mapping) or name not in codes:
            raise MappingError(f"{self.path}: codes.{name} is missing")
        return load_codelist(codes[name], name, kind, str(self.path))

    def coverage(self, separator: str = ".") -> FieldCoverage:
        """The ``fields.mapped`` and ``fields.ignored`` lists (paths split on ``separator``)."""
        fields = self.data.get("fields")
        if not isinstance(fields, Mapping):
            raise MappingError(f"{self.path}: fields must be a mapping of mapped/ignored")
        parts: list[Mapping[str, str]] = []
        for part in ("mapped", "ignored"):
            value = fields.get(part, {})
            if not isinstance(value, Mapping):
                raise MappingError(f"{self.path}: fields.{part} must map a path to a note")
            parts.append(MappingProxyType({str(k): str(v) for k, v in value.items()}))
        return FieldCoverage(parts[0], parts[1], separator)


def read_mapping_file(path: Path) -> MappingFile:
    """Read and parse ``path``; a missing or unparsable file is a ``MappingError``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise MappingError(f"{path}: a mapping file must be a YAML mapping")
    return MappingFile(path, data)
