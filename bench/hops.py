"""Where a message's time goes at an offered rate: each hop, from both ledgers (issue 14).

``python -m bench.hops [--count 2000] [--rate 200] [--warm 300] [--check-processes 1]``

The rig of ``bench.run`` (a sender gateway in this process, a receiving
``cafgw run`` process, the local RabbitMQ in a vhost of its own) sends
``--warm`` messages, then ``--count`` at ``--rate`` per second. Afterwards both
SQLite ledgers are read and every message's way is cut into hops by the first
time each status was recorded:

1. outbox insert (``SIGNED``) -> published and confirmed (``SENT``), sender;
2. -> recorded by the receiver (``RECEIVED``);
3. -> the receipt covering it signed (``SIGNED``), receiver;
4. -> that receipt published and confirmed (``SENT``), receiver;
5. -> the receipt recorded by the sender (``RECEIVED``);
6. -> the message ``DELIVERED``, sender.

Both gateways run on this machine's clock, so the hops add up to the end-to-end
time the bench reports. Prints how many messages a receipt covered on average,
and p50/p95/p99 per hop; writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import turns  # noqa: E402
from bench.bench_support import rabbit_vhost  # noqa: E402
from bench.run import cafgw, open_rig  # noqa: E402
from gateway.ledger.core import make_engine  # noqa: E402
from gateway.ledger.tables import history, messages  # noqa: E402

HOPS = (
    "insert -> SENT",
    "SENT -> received",
    "received -> receipt signed",
    "receipt signed -> sent",
    "receipt sent -> back at the sender",
    "receipt back -> DELIVERED",
)

Row = tuple[str, str, str | None]  # message_id, message_type, receipt_message_id
Firsts = dict[int, dict[str, datetime]]  # message pk -> status -> first time


def read_ledger(path: Path) -> tuple[dict[int, Row], Firsts]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            rows = {
                int(r[0]): (str(r[1]), str(r[2]), r[3])
                for r in conn.execute(
                    select(
                        messages.c.id,
                        messages.c.message_id,
                        messages.c.message_type,
                        messages.c.receipt_message_id,
                    )
                ).all()
            }
            firsts: Firsts = {}
            for pk, status, at in conn.execute(
                select(history.c.message_pk, history.c.status, history.c.at).order_by(history.c.id)
            ).all():
                firsts.setdefault(int(pk), {}).setdefault(str(status), at)
    finally:
        engine.dispose()
    return rows, firsts


@dataclass(frozen=True)
class Hops:
    """Milliseconds per hop (and end to end) of each message measured, and how many
    messages a receipt covered on average (receipts at the window's start also
    covered messages before it: a slight undercount)."""

    ms: dict[str, list[float]]
    per_receipt: float


def hops(workdir: Path, count: int) -> Hops:
    """Each hop of the last ``count`` messages the sender sent."""
    sent, sent_at = read_ledger(workdir / "sender" / "ledger.db")
    got, got_at = read_ledger(workdir / "receiver" / "ledger.db")
    sender_pk = {row[0]: pk for pk, row in sent.items()}
    receiver_pk = {row[0]: pk for pk, row in got.items()}
    out: dict[str, list[float]] = {name: [] for name in (*HOPS, "end to end")}
    receipts: set[str] = set()
    ours = sorted(pk for pk, row in sent.items() if row[1] != "Receipt" and pk in sent_at)
    for pk in ours[-count:]:
        there = receiver_pk.get(sent[pk][0])
        receipt_id = got[there][2] if there is not None else None
        receipt_there = receiver_pk.get(receipt_id or "")
        receipt_back = sender_pk.get(receipt_id or "")
        if there is None or receipt_there is None or receipt_back is None:
            continue
        times = [
            sent_at[pk].get("SIGNED"),
            sent_at[pk].get("SENT"),
            got_at[there].get("RECEIVED"),
            got_at[receipt_there].get("SIGNED"),
            got_at[receipt_there].get("SENT"),
            sent_at.get(receipt_back, {}).get("RECEIVED"),
            sent_at[pk].get("DELIVERED"),
        ]
        if any(t is None for t in times):
            continue
        receipts.add(receipt_id or "")
        stamps = [t for t in times if t is not None]
        for name, start, end in zip(HOPS, stamps, stamps[1:], strict=False):
            out[name].append((end - start).total_seconds() * 1000)
        out["end to end"].append((stamps[-1] - stamps[0]).total_seconds() * 1000)
    return Hops(out, len(out["end to end"]) / max(1, len(receipts)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hops", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument(
        "--check-processes",
        type=int,
        default=1,
        help="the receiver's check_processes, as bench.run's default (0: its thread checks)",
    )
    parser.add_argument(
        "--turns",
        action="store_true",
        help="also time the sender process's SQLite writer: who waited for it, who held it",
    )
    args = parser.parse_args(argv)
    with rabbit_vhost() as url, tempfile.TemporaryDirectory(prefix="cafgw-hops-") as tmp:
        rig = open_rig(Path(tmp), url, args.check_processes)
        try:
            cafgw(rig, args.warm, args.rate, "warm-up", 60)
            started = time.monotonic()
            with turns.watch() if args.turns else nullcontext(turns.TurnTimes()) as writer:
                row = cafgw(rig, args.count, args.rate, f"rate {args.rate:.0f}/s", 120)
            window_s = time.monotonic() - started
        finally:
            rig.close()
        measured = hops(Path(tmp), args.count)
    print(f"{row.run}: {row.note}; CPU ms per message (sender, receiver):")
    for side in ("sender", "receiver"):
        stages = row.cpu_ms_per_msg.get(side, {})
        print(f"  {side}: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if v >= 0.05))
    print(f"messages per receipt: {measured.per_receipt:.1f}")
    print(f"{'hop':36s} {'n':>5s} {'p50':>7s} {'p95':>7s} {'p99':>7s}  ms")
    for name, values in measured.ms.items():
        if len(values) < 2:
            print(f"{name:36s} {len(values):5d}")
            continue
        q = statistics.quantiles(values, n=100, method="inclusive")
        print(f"{name:36s} {len(values):5d} {q[49]:7.1f} {q[94]:7.1f} {q[98]:7.1f}")
    if args.turns:
        print(f"the sender process's SQLite writer over {window_s:.1f} s (ms; busy: share held):")
        print("\n".join(writer.table(window_s)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
