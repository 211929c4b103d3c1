"""Typed, checked access to one decoded JSON record.

JSON from a local system may have any shape; a ``JsonView`` reads it by
key and reports a wrong type or a missing required value as a
``FieldProblem`` (through ``RecordCheck``) instead of raising, so that one
odd record is rejected and the rest of the file still converts.
"""

from __future__ import annotations

from collections.abc import Iterator

from adapters.checks import RecordCheck


class JsonView:
    """A JSON object at ``path`` inside a record."""

    def __init__(self, value: dict[str, object], path: str, check: RecordCheck) -> None:
        self.value = value
        self.path = path
        self.check = check

    def where(self, key: str) -> str:
        """The dotted path of ``key`` in this object."""
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> object:
        value = self.value.get(key)
        if value is None and required:
            self.check.add(self.where(key), "required value is missing")
        return value

    def obj(self, key: str, required: bool = False) -> JsonView | None:
        """The object under ``key``."""
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.check.add(self.where(key), "must be an object", _shown(value))
            return None
        return JsonView(value, self.where(key), self.check)

    def objects(self, key: str) -> Iterator[JsonView]:
        """The objects of the list under ``key`` (no list: none)."""
        for where, item in self.items(key):
            if isinstance(item, dict):
                yield JsonView(item, where, self.check)
            else:
                self.check.add(where, "must be an object", _shown(item))

    def items(self, key: str) -> Iterator[tuple[str, object]]:
        """``(path, value)`` of each element of the list under ``key``."""
        value = self._get(key, False)
        if value is None:
            return
        if not isinstance(value, list):
            self.check.add(self.where(key), "must be a list", _shown(value))
            return
        for index, item in enumerate(value):
            yield f"{self.where(key)}[{index}]", item

    def texts(self, key: str) -> Iterator[tuple[str, str]]:
        """``(path, text)`` of each string of the list under ``key``."""
        for where, item in self.items(key):
            if isinstance(item, str):
                yield where, item.strip()
            else:
                self.check.add(where, "must be a string", _shown(item))

    def text(self, key: str, required: bool = False) -> str | None:
        """The string under ``key``, trimmed; an empty string is ``None``."""
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # LA codes are sometimes written as numbers
        if not isinstance(value, str):
            self.check.add(self.where(key), "must be a string", _shown(value))
            return None
        value = value.strip()
        if not value and required:
            self.check.add(self.where(key), "required value is empty")
        return value or None

    def flag(self, key: str) -> bool | None:
        """The boolean under ``key``."""
        value = self._get(key, False)
        if value is None or isinstance(value, bool):
            return value
        self.check.add(self.where(key), "must be true or false", _shown(value))
        return None

    def raw(self, key: str) -> object:
        """The value under ``key`` unchecked (for checks done elsewhere)."""
        return self.value.get(key)

    def keys(self) -> list[str]:
        """The keys of this object."""
        return list(self.value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
