"""What the same work costs right after the thread slept: the price of a wake-up.

``python -m bench.wake [--calls 200] [--naps 0,0.05,0.2,1,5,20]``: offline, no
broker. Each step is one message's work, called ``--calls`` times after a
nap of each length (ms), the nap lengths taken in turn, a tenth of the calls
at a time, so that the machine's drift falls on every column alike. The table
gives each step's median thread CPU per call (``time.thread_time``) after each
nap; the JSON goes to ``bench/results/wake-<time>.json``.

Steps: ``Outbox.sign`` (one Assessment signed, the sending gateway's work per
message), ``check`` (one received message's checks: parse, verify, schema,
decode, content digest) and a reference of plain Python that is none of the
gateway's code (a 5 KB JSON document dumped and read back), to tell the
gateway's code from the machine.

At 200 msgs/s a gateway's threads sleep a few milliseconds between batches;
flat out they never do. Where the CPU is slower after a sleep (caches and
branch predictors taken by whatever ran meanwhile, on the host or the guest),
every message at a modest rate costs more CPU than flat out, and its latency
grows with it: ``docs/performance.md``, "the price of a wake-up".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))  # after the tree measured: only its helpers

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import offline  # noqa: E402
from gateway.services.receiving import checks  # noqa: E402
from gateway.transport.base import Delivery  # noqa: E402
from gateway.transport.provenance import publishers_for  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SLICES = 10
"""Each nap length's calls come in this many slices, the lengths taken in turn."""


def reference_document() -> dict[str, Any]:
    """A 5 KB document of the shape an Assessment has, for the plain-Python reference."""
    return {
        "child": {"id": "A123456", "name": "Child Name", "born": "2015-03-01"},
        "needs": [{"domain": f"domain-{i}", "level": i % 4, "note": "x" * 40} for i in range(40)],
        "actions": [{"who": f"practitioner-{i}", "due": "2027-01-01"} for i in range(10)],
    }


def measure(
    steps: dict[str, Callable[[int], object]], calls: int, naps_ms: list[float]
) -> dict[str, dict[float, list[float]]]:
    """Thread CPU seconds of each call of each step, by the nap before it."""
    taken: dict[str, dict[float, list[float]]] = {
        name: {nap: [] for nap in naps_ms} for name in steps
    }
    per_slice = max(1, calls // SLICES)
    serial = 0
    for _ in range(SLICES):
        for nap in naps_ms:
            for name, step in steps.items():
                for _ in range(per_slice):
                    if nap:
                        time.sleep(nap / 1000)
                    started = time.thread_time()
                    step(serial)
                    taken[name][nap].append(time.thread_time() - started)
                    serial += 1
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per step and nap")
    parser.add_argument("--naps", default="0,0.05,0.2,1,5,20", help="nap lengths, ms")
    args = parser.parse_args()
    naps_ms = [float(n) for n in args.naps.split(",") if n.strip()]
    calls_total = args.calls * len(naps_ms)
    with tempfile.TemporaryDirectory(prefix="cafgw-wake-") as tmp:
        pair = offline.pair(Path(tmp))
        sender, receiver = pair.sender, pair.receiver
        envelopes = pair.fresh(calls_total + 50)
        signed = [sender.outbox.sign(env) for env in pair.fresh(calls_total + 50)]
        account = sorted(publishers_for(receiver.settings.broker, offline.SENDER))[0]
        queue = f"caf.inbox.{offline.RECIPIENT}"
        key = f"{offline.RECIPIENT}.Assessment.{offline.SENDER}"
        deliveries = [
            Delivery(queue, key, m.body or b"", m.message_id, {}, 0, n, account)
            for n, m in enumerate(signed)
        ]
        source = checks.source_of(receiver, deliveries[0])
        assert isinstance(checks.check(receiver, source, deliveries[0]), checks.Passed)
        document = reference_document()
        steps: dict[str, Callable[[int], object]] = {
            "Outbox.sign": lambda i: sender.outbox.sign(envelopes[i % len(envelopes)]),
            "check (received)": lambda i: checks.check(
                receiver, source, deliveries[i % len(deliveries)]
            ),
            "plain Python (5 KB JSON)": lambda _i: json.loads(json.dumps(document)),
        }
        for step in steps.values():  # warm: every code path taken before timing
            for i in range(50):
                step(i)
        taken = measure(steps, args.calls, naps_ms)
    medians = {
        name: {nap: statistics.median(values) * 1000 for nap, values in by_nap.items()}
        for name, by_nap in taken.items()
    }
    table = Table(title="thread CPU per call, ms (median), by the nap before it")
    table.add_column("step")
    for nap in naps_ms:
        table.add_column(f"nap {nap:g} ms", justify="right")
    table.add_column("slowest / first nap", justify="right")
    for name, by_nap in medians.items():
        base = by_nap[naps_ms[0]]
        worst = max(by_nap.values())
        ratio = f"{worst / base:.2f}×" if base else "-"
        table.add_row(name, *(f"{by_nap[nap]:.3f}" for nap in naps_ms), ratio)
    Console(width=120).print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"wake-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "calls": args.calls,
                "naps_ms": naps_ms,
                "median_ms": {
                    name: {f"{nap:g}": round(ms, 4) for nap, ms in by_nap.items()}
                    for name, by_nap in medians.items()
                },
            },
            indent=2,
        )
    )
    print(f"written {out}")


if __name__ == "__main__":
    main()
