"""The CPU budget of a bench run: CPU ms per message, by stage and side.

A process's CPU is read from the kernel: the sender in this process, the
receiver as a ``cafgw run`` process from ``/proc`` (so the scrape of its
``/metrics`` is not counted), with its check processes' CPU. The stages come
from ``gateway.cpu_budget`` in a row whose gateways run with ``cpu_budget`` on:
the sender's read directly, the receiver's from its ``/metrics`` (its check
processes' stages reach it with their results, ``check_pool``). The timers cost
about 4 % of a message's CPU, so ``bench.run``'s timed rows run without them
(the gateways as deployed) and show each process's total alone; the stages
come from a row of their own (``--budget-count``). RabbitMQ's CPU
is read from its ``beam.smp`` process: it is the whole node, shared with
whatever else uses the broker.
A budget is the difference between a snapshot before and after a run,
divided by the messages the run delivered.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from gateway.cpu_budget import BUDGET, STAGES

_TICKS = os.sysconf("SC_CLK_TCK")
_METRIC = re.compile(r'^cafgw_stage_cpu_seconds_total\{stage="([a-z]+)"\} ([0-9.e+-]+)$', re.M)


def proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads) and of every
    process it started that still runs (a gateway's check processes:
    ``check_processes``), or None."""
    if pid is None:
        return None
    own = _own_cpu_s(pid)
    if own is None:
        return None
    return own + sum(_own_cpu_s(child) or 0.0 for child in descendants(pid))


def _own_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` alone, or None (gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started, still running."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    out = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child))
    return out


def broker_pid() -> int | None:
    """The RabbitMQ node's beam.smp process, if this machine runs it."""
    found = subprocess.run(
        ["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True, check=False
    )
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def scrape_stages(port: int) -> dict[str, float]:
    """The receiver's ``cafgw_stage_cpu_seconds_total`` per stage."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return {stage: float(value) for stage, value in _METRIC.findall(text)}


@dataclass
class Snapshot:
    sender: dict[str, float]
    receiver: dict[str, float]
    receiver_process_s: float | None
    broker_s: float | None
    timed: bool = True
    """Whether this process's (the sender's) stage timers were on; the receiver's are
    read from whether its ``/metrics`` had stages."""
    at: float = field(default_factory=time.monotonic)


def snapshot(
    receiver_port: int | None, receiver_pid: int | None, broker: int | None, *, ending: bool
) -> Snapshot:
    """Stages and process CPU of both sides and the broker, now.

    The receiver's process CPU is read after the scrape that starts a run and
    before the one that ends it, so the scrapes' own work is not counted.
    """
    receiver_s = proc_cpu_s(receiver_pid) if ending else None
    receiver = scrape_stages(receiver_port) if receiver_port else {}
    if not ending:
        receiver_s = proc_cpu_s(receiver_pid)
    sender = BUDGET.snapshot()
    return Snapshot(sender, receiver, receiver_s, proc_cpu_s(broker), BUDGET.enabled)


def budget(before: Snapshot, after: Snapshot, messages: int) -> dict[str, dict[str, float]]:
    """CPU ms per message: ``{"sender": {stage: ms, ...}, "receiver": {...}, "broker": ...}``.

    Each side also has ``total`` (its process CPU) and, with its stage timers on,
    ``other`` (process CPU no stage claimed); with them off, ``total`` alone.
    """
    n = max(1, messages)
    out: dict[str, dict[str, float]] = {}
    sides = (
        (
            "sender",
            before.sender,
            after.sender,
            after.sender["process"] - before.sender["process"],
            before.timed and after.timed,
        ),
        (
            "receiver",
            before.receiver,
            after.receiver,
            None
            if before.receiver_process_s is None or after.receiver_process_s is None
            else after.receiver_process_s - before.receiver_process_s,
            bool(after.receiver),
        ),
    )
    for side, b, a, process_s, timed in sides:
        row = {s: (a.get(s, 0.0) - b.get(s, 0.0)) * 1000 / n for s in STAGES} if timed else {}
        if process_s is not None:
            row["total"] = process_s * 1000 / n
            if timed:
                row["other"] = row["total"] - sum(row[s] for s in STAGES)
        if row:
            out[side] = row
    if before.broker_s is not None and after.broker_s is not None:
        out["broker"] = {"total": (after.broker_s - before.broker_s) * 1000 / n}
    return out


def client_budget(
    cpu_before_s: float,
    cpu_after_s: float,
    broker_before: float | None,
    broker_after: float | None,
    messages: int,
) -> dict[str, dict[str, float]]:
    """The raw pika run's budget: this process's CPU and the broker's, per message."""
    n = max(1, messages)
    out = {"client": {"total": (cpu_after_s - cpu_before_s) * 1000 / n}}
    if broker_before is not None and broker_after is not None:
        out["broker"] = {"total": (broker_after - broker_before) * 1000 / n}
    return out


def budget_table(
    run: str,
    cafgw: dict[str, dict[str, float]],
    raw: dict[str, dict[str, float]] | None,
    rates: tuple[float, float | None],
) -> Table:
    """CPU ms per message by stage and side for one run, beside raw pika's."""
    table = Table(title=f"CPU budget, ms per message ({run})")
    for col in ("stage", "sender", "receiver", "both"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    sender, receiver = cafgw.get("sender", {}), cafgw.get("receiver", {})

    def cell(side: dict[str, float], key: str) -> str:
        return f"{side[key]:.3f}" if key in side else "-"

    for key in (*STAGES, "other", "total"):
        if key not in sender and key not in receiver:
            if key != "total":
                continue  # stage timers off in this row: its totals only
            table.add_row(key, "-", "-", "-")
            continue
        both = sender.get(key, 0.0) + receiver.get(key, 0.0)
        table.add_row(key, cell(sender, key), cell(receiver, key), f"{both:.3f}")
    gateways = sender.get("total", 0.0) + receiver.get("total", 0.0)
    broker = cafgw.get("broker", {}).get("total")
    table.add_row("RabbitMQ node", "", "", "-" if broker is None else f"{broker:.3f}")
    if raw:
        client = raw.get("client", {}).get("total", 0.0)
        raw_broker = raw.get("broker", {}).get("total")
        table.add_row("raw pika: client", "", "", f"{client:.3f}")
        shown = "-" if raw_broker is None else f"{raw_broker:.3f}"
        table.add_row("raw pika: RabbitMQ node", "", "", shown)
        if client:
            table.add_row("gateways / raw pika client", "", "", f"{gateways / client:.1f}x")
        if broker is not None and raw_broker:
            ratio = (gateways + broker) / (client + raw_broker)
            table.add_row("all processes / raw pika", "", "", f"{ratio:.1f}x")
    cafgw_rate, raw_rate = rates
    if raw_rate:
        table.add_row("msgs/s cafgw / raw pika", "", "", f"{cafgw_rate / raw_rate:.1%}")
    return table
