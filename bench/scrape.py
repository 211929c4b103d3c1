"""What a look at a large ledger costs: the reads behind ``/metrics`` and the dashboard.

``python -m bench.scrape [--messages 200000] [--needing 0.02] [--rounds 3]``: an
SQLite ledger in a temporary folder holding ``--messages`` messages of one
authority (half sent, half received; ``--needing`` of them dead-lettered or
quarantined, the rest delivered or handed over), written straight to the table.
Then, best of ``--rounds``, the CPU of this thread for each read a scrape of the
metrics or a look at the dashboard makes of the whole ledger: the
``cafgw_messages`` gauge (``stats.counts_by_type``), what needs a human, counted
(``attention.counts``, the ``cafgw_needs_human`` gauge and the dashboard's
card) and listed (``attention.records``, the dashboard's list). A read that
grows with the ledger shows here; one that grows with what needs a human does
not.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from gateway.ledger import stats
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.ops import attention

AUTHORITY, PEER = "332", "336"


def fill(
    ledger: Ledger,
    count: int,
    needing: float,
    seed: int = 7,
    *,
    at: datetime | None = None,
    children: int = 0,
) -> None:
    """``count`` messages of ``AUTHORITY``, ``needing`` of them waiting for a human;
    recorded ``at`` (now), about ``children`` children (none: no child key)."""
    pick = random.Random(seed)
    now = at or datetime.now(UTC)
    rows: list[dict[str, object]] = []
    with ledger.engine.begin() as conn:
        for n in range(count):
            out = n % 2 == 1
            if pick.random() < needing:
                status = Status.DEAD_LETTERED if out else Status.QUARANTINED
            else:
                status = Status.DELIVERED if out else Status.DELIVERED_LOCAL
            rows.append(
                {
                    "message_id": str(uuid.UUID(int=pick.getrandbits(128))),
                    "direction": (Direction.OUTBOUND if out else Direction.INBOUND).value,
                    "authority": AUTHORITY,
                    "sender": AUTHORITY if out else PEER,
                    "recipient": PEER if out else AUTHORITY,
                    "message_type": "Assessment",
                    "correlation_id": str(uuid.uuid4()),
                    "legal_basis": "CONSENT",
                    "status": status.value,
                    "attempts": 1,
                    "created_at": now,
                    "updated_at": now,
                    "digest": "0" * 64,
                    "child_key": f"child-{n % children}" if children else None,
                }
            )
            if len(rows) == 5000:
                conn.execute(insert(messages), rows)
                rows = []
        if rows:
            conn.execute(insert(messages), rows)


def best_ms(read: Callable[[], object], rounds: int) -> float:
    """The least CPU (this thread's) one call of ``read`` took, in ms."""
    times = []
    for _ in range(rounds):
        began = time.thread_time()
        read()
        times.append((time.thread_time() - began) * 1000)
    return min(times)


def print_best(reads: dict[str, Callable[[], object]], rounds: int, width: int = 8) -> None:
    """Each of ``reads`` by name, with the least CPU one call took (``best_ms``)."""
    for name, read in reads.items():
        print(f"  {name:48} {best_ms(read, rounds):{width}.1f} ms CPU", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--needing", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cafgw-scrape-") as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        fill(ledger, args.messages, args.needing)
        reads: dict[str, Callable[[], object]] = {
            "cafgw_messages (stats.counts_by_type)": lambda: stats.counts_by_type(ledger),
            "needs a human, counted (attention.counts)": lambda: attention.counts(
                ledger, [AUTHORITY]
            ),
            "needs a human, listed (attention.records, 50)": lambda: attention.records(
                ledger, [AUTHORITY], 50
            ),
        }
        print(f"{args.messages:,} messages, {args.needing:.0%} needing a human")
        print_best(reads, args.rounds)
        ledger.engine.dispose()


if __name__ == "__main__":
    main()
