"""Adapter registry: adapter name -> how to build it from its mapping.

The three built-in adapters have a package each whose ``adapter`` module
exposes ``create(mapping_path, known_authorities)``. Any other
``config/adapters/<name>.yaml`` with a ``kind:`` key (``csv`` or ``json``)
is a declarative mapping that ``adapters.generic.adapter`` turns into an
adapter, so an administrator adds an authority with a YAML file and no code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

import yaml

from adapters.base import Adapter
from adapters.generic.mapping import KINDS
from gateway.errors import MappingError, UnknownAdapterError

MODULES: dict[str, str] = {
    "dudley-csv": "adapters.dudley.adapter",
    "wolverhampton-json": "adapters.wolverhampton.adapter",
    "sandwell-xml": "adapters.sandwell.adapter",
}
GENERIC = "adapters.generic.adapter"


def names() -> list[str]:
    """The built-in adapters."""
    return sorted(MODULES)


def is_generic(path: Path) -> bool:
    """Whether ``path`` is a declarative mapping (has a top-level ``kind`` key)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping: {exc}") from exc
    return isinstance(data, dict) and "kind" in data


def discover(adapters_dir: Path) -> list[str]:
    """Adapter names with a mapping in ``adapters_dir``: built-ins and ``kind:`` mappings."""
    found = [name for name in names() if (adapters_dir / f"{name}.yaml").exists()]
    for path in sorted(adapters_dir.glob("*.yaml")):
        if path.stem not in MODULES and is_generic(path):
            found.append(path.stem)
    return sorted(found)


def create(name: str, adapters_dir: Path, known_authorities: Iterable[str]) -> Adapter:
    """Build the adapter ``name`` from ``adapters_dir/<name>.yaml``."""
    path = adapters_dir / f"{name}.yaml"
    module_name = MODULES.get(name)
    if module_name is None:
        if not path.exists() or not is_generic(path):
            known = ", ".join(discover(adapters_dir)) if adapters_dir.is_dir() else ""
            raise UnknownAdapterError(
                f"no adapter named {name!r}; known adapters: {known or ', '.join(names())}"
            )
        module_name = GENERIC
    module = importlib.import_module(module_name)
    adapter: Adapter = module.create(path, frozenset(known_authorities))
    return adapter


def kinds() -> tuple[str, ...]:
    """The ``kind:`` values a declarative mapping may have."""
    return KINDS
