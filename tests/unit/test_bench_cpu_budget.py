"""bench.cpu: a row whose gateways ran without stage timers shows each process's total
CPU alone; a row with them shows every stage and what no stage claimed."""

from __future__ import annotations

from rich.console import Console

from bench import cpu
from gateway.cpu_budget import STAGES


def _snap(
    sender_s: float, receiver_s: float, *, timed: bool, verify_s: float = 0.0
) -> cpu.Snapshot:
    sender = {**dict.fromkeys(STAGES, 0.0), "process": sender_s}
    receiver = {**dict.fromkeys(STAGES, 0.0), "verify": verify_s} if timed else {}
    return cpu.Snapshot(sender, receiver, receiver_s, 10.0 + sender_s, timed)


def test_a_row_run_without_stage_timers_carries_each_processes_total_alone() -> None:
    found = cpu.budget(_snap(1.0, 2.0, timed=False), _snap(2.0, 5.0, timed=False), 1000)
    assert found == {"sender": {"total": 1.0}, "receiver": {"total": 3.0}, "broker": {"total": 1.0}}
    shown = Console(width=200, record=True)
    shown.print(cpu.budget_table("flat out 1000", found, None, (100.0, None)))
    lines = shown.export_text().splitlines()
    assert not any(line.split("│")[1].strip() in STAGES for line in lines if "│" in line)
    assert any("total" in line and "4.000" in line for line in lines)


def test_a_row_with_stage_timers_charges_stages_and_the_rest_to_other() -> None:
    before = _snap(1.0, 2.0, timed=True, verify_s=0.5)
    after = _snap(2.0, 5.0, timed=True, verify_s=1.5)
    found = cpu.budget(before, after, 1000)
    assert found["receiver"]["verify"] == 1.0
    assert found["receiver"]["other"] == 2.0  # 3 ms a message, 1 of it verify
    assert found["sender"]["other"] == 1.0 and found["sender"]["sign"] == 0.0
