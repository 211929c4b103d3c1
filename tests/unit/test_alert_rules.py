"""Every alert has a runbook entry in docs/operations.md and a promtool unit test."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
OPERATIONS = ROOT / "docs" / "operations.md"


def _alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_links_to_its_runbook_entry_in_the_operations_guide() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    anchors = {m.lower() for m in re.findall(r"^#+ .*?`?(Cafgw\w+)`?\s*$", text, re.M)}
    anchors |= {m.lower() for m in re.findall(r'<a id="(cafgw\w+)"></a>', text)}
    missing = []
    for alert in _alerts():
        name = str(alert["alert"])
        annotations = alert.get("annotations") or {}
        assert isinstance(annotations, dict)
        assert annotations.get("runbook") == f"docs/operations.md#{name.lower()}", name
        if name.lower() not in anchors:
            missing.append(name)
    assert missing == []


def test_every_alert_is_exercised_by_a_promtool_unit_test() -> None:
    tested = "\n".join(p.read_text(encoding="utf-8") for p in PROMETHEUS.glob("alerts*_test.yml"))
    exercised = set(re.findall(r"alertname: (\w+)", tested))
    untested = {str(a["alert"]) for a in _alerts()} - exercised
    assert untested == set()
