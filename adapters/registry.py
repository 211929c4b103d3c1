"""Adapter registry: adapter name -> module that builds it from its mapping.

Each adapter module exposes ``create(mapping_path, known_authorities)``;
its mapping and code lists live in ``config/adapters/<name>.yaml``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from adapters.base import Adapter
from gateway.errors import UnknownAdapterError

MODULES: dict[str, str] = {
    "dudley-csv": "adapters.dudley_csv",
    "wolverhampton-json": "adapters.wolverhampton_json",
    "sandwell-xml": "adapters.sandwell_xml",
}


def names() -> list[str]:
    return sorted(MODULES)


def create(name: str, adapters_dir: Path, known_authorities: Iterable[str]) -> Adapter:
    """Build the adapter ``name`` from ``adapters_dir/<name>.yaml``."""
    try:
        module_name = MODULES[name]
    except KeyError:
        raise UnknownAdapterError(
            f"no adapter named {name!r}; known adapters: {', '.join(names())}"
        ) from None
    module = importlib.import_module(module_name)
    adapter: Adapter = module.create(adapters_dir / f"{name}.yaml", frozenset(known_authorities))
    return adapter
