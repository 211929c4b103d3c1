"""Shared helpers of the retention, erasure and subject-access tests: a region on the
in-memory transport with a clock the test moves, and the Dudley sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from policy_support import DUDLEY, pump, settings_for, submit
from support.clock import Clock

from gateway.context import Gateway, build
from gateway.settings import RetentionSettings, Settings
from gateway.transport.memory import MemoryTransport

# Dudley row 1: Siobhán O’Neill, shared with Wolverhampton (336) and Sandwell (333).
SIOBHAN = ("Siobh", "J332412014017", "WV14 0QL")
# Dudley row 2: Jayden Clarke, kept at Dudley.
JAYDEN = ("Jayden", "Y332410315022", "DY2 9PL")


def retention_yaml(settings: Settings, **values: Any) -> Settings:
    """Write the test config's retention.yaml (the project's, with ``values`` changed);
    the settings as a gateway starting now reads them (settings are read once, at start)."""
    path = settings.config_dir / "retention.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(values)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return settings.model_copy(update={"retention": RetentionSettings.model_validate(data)})


def region(tmp_path: Path, clock: Clock, settings: Settings | None = None) -> Gateway:
    """Every authority on one in-memory transport, with the test's clock."""
    transport = MemoryTransport()
    gw = build(settings or settings_for(tmp_path), transport, clock=clock)
    transport.declare(gw.hosted)
    return gw


def dudley_shared(gw: Gateway, csv: bytes | None = None) -> None:
    """Dudley submits its register; everything is delivered and receipted."""
    submit(gw, "332", "dudley-csv", csv or DUDLEY.read_bytes(), "caf-register.csv")
    pump(gw)


def found_in(folder: Path, needles: tuple[str, ...]) -> dict[str, list[str]]:
    """Which of ``needles`` occur (as UTF-8 or Latin-1 bytes) in which files under ``folder``.

    A running gateway stages files and renames them into place; when one vanishes
    mid-scan the whole folder is scanned again, so its new name is read too.
    """
    for _ in range(20):
        hits: dict[str, list[str]] = {}
        try:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                data = path.read_bytes()
                for needle in needles:
                    if needle.encode("utf-8") in data or needle.encode("latin-1") in data:
                        hits.setdefault(needle, []).append(str(path.relative_to(folder)))
        except FileNotFoundError:
            continue
        return hits
    raise AssertionError(f"files under {folder} kept vanishing while being read")
