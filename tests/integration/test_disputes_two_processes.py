"""Two gateway processes (real OS processes) on one PostgreSQL ledger: a due
dispute is escalated exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.context import build
from gateway.disputes import service
from gateway.ledger.status import Direction, Route
from gateway.model import DisputeAction, DisputeStage
from gateway.transport.memory import MemoryTransport
from tests.dispute_helpers import ROOT, Clock, dispute_settings, request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# One gateway process: builds its gateway on the shared ledger, says it is ready,
# waits for the start signal (so both race), then runs the escalation clock.
SCRIPT = """
import json, sys, time
from datetime import datetime
from pathlib import Path
from gateway.context import build
from gateway.disputes import service
from gateway.settings import load_settings
from gateway.transport.memory import MemoryTransport

config, overrides, now, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
moment = datetime.fromisoformat(now)
settings = load_settings(Path(config), env={}, overrides=overrides)
gw = build(settings, MemoryTransport(), clock=lambda: moment)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
print(sum(service.escalate_due(gw.kit, moment) for _ in range(3)), flush=True)
"""


def test_two_gateway_processes_on_postgresql_escalate_a_dispute_once(
    tmp_path: Path, pg_url: str
) -> None:
    clock = Clock()
    overrides = {
        "hosted": ["332", "336"],
        "database": {"url": pg_url},
        "keys_dir": str(tmp_path / "keys"),
        "api_keys_file": str(tmp_path / "api-keys.json"),
    }
    settings = dispute_settings(tmp_path, ("332", "336"), pg_url, now=clock())
    gw = build(settings, MemoryTransport(), clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    assert raised.deadline is not None
    due = (raised.deadline).isoformat()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(ROOT / "config"),
                json.dumps(overrides),
                due,
                str(go),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", (
                proc.stderr.read() if proc.stderr else ""
            )
        go.touch()
        counts = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            counts.append(int(out.strip()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sorted(counts) == [0, 1]
    view = service.get_dispute(gw.kit, "332", raised.dispute_id)
    assert view.stage is DisputeStage.COORDINATORS
    assert sum(e.action is DisputeAction.ESCALATED for e in view.history) == 1
    notices = [
        r
        for r in gw.ledger.find(direction=Direction.OUTBOUND, limit=100, with_history=False)
        if r.route is Route.ESCALATION and r.case_ref == "DUD-2026-00417"
    ]
    assert len(notices) == 2  # one per party's escalation queue, not four
    gw.ledger.engine.dispose()
