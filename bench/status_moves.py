"""What the ledger's status moves cost on SQLite, apart from everything else.

``python -m bench.status_moves [--count 6000]``: a ledger file of its own;
``--count`` outbound messages with 5 KB bodies (a signed document's size)
recorded three per transaction, then moved to ``SENT`` and to ``DELIVERED``
three rows per transaction, as ``mark_sent`` and ``mark_delivered`` do. For
each kind of transaction: this process's CPU (``process_time``) and the bytes
it wrote (``wchar`` of ``/proc/self/io``: the log and its checkpoints).
Measures whichever tree ``PYTHONPATH`` names; only public ``Ledger`` calls,
so an older tree runs it too (docs/performance.md, "bodies in a table of
their own").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))  # after the tree measured: only its helpers

from support.outbound import signed_assessment  # noqa: E402

from gateway.ledger.status import Status  # noqa: E402
from gateway.ledger.store import Ledger  # noqa: E402

BODY = b"<signed>" + b"x" * 5000 + b"</signed>"


def written_bytes() -> int:
    """Bytes this process has passed to write calls so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cafgw-moves-") as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        cpu0, written0 = time.process_time(), written_bytes()
        batches = [
            ledger.record([signed_assessment(BODY) for _ in range(3)])
            for _ in range(args.count // 3)
        ]
        cpu1, written1 = time.process_time(), written_bytes()
        for batch in batches:
            ledger.transition(batch, Status.SENT, None, attempts=1)
        for batch in batches:
            ledger.transition(batch, Status.DELIVERED, "receipt r-1")
        cpu2, written2 = time.process_time(), written_bytes()
        ledger.engine.dispose()
    moves = 2 * len(batches)
    print(
        f"record: {1000 * (cpu1 - cpu0) / len(batches):.3f} ms CPU, "
        f"{(written1 - written0) / len(batches) / 1024:.1f} KiB written per 3-message transaction"
    )
    print(
        f"moves:  {1000 * (cpu2 - cpu1) / moves:.3f} ms CPU, "
        f"{(written2 - written1) / moves / 1024:.1f} KiB written per 3-row move ({moves} moves)"
    )


if __name__ == "__main__":
    main()
