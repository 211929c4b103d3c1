"""The sending gateway's hot ledger transactions at small batches, offline (issue 14).

``python -m bench.sender_ledger [--rounds 600] [--sizes 1,2,3]``: two gateways in
this process (332 sends, 336 receives) on the in-memory transport, each with
an SQLite ledger of its own in a temporary directory, no broker. Each round
records ``k`` signed Assessments in a transaction of their own (the bench's and
the API's submission, handed to the sender loop as a running worker has it),
publishes them and marks them ``SENT`` (``transition_from``, a transaction of
its own), lets the receiver record them and sign its receipt, and lets the
sender record that receipt and mark its messages ``DELIVERED``
(``pipeline._record_checked``). Prints, per transaction kind of the sender's
ledger (named by the function that opened it), this thread's CPU inside
``Ledger.transaction()``: commit and flush included, noisy when the machine is
busy.

``--callgrind``: under ``valgrind --tool=callgrind --collect-atstart=no``,
counts the instructions of each kind instead (one kind after the other, each
over ``--rounds`` rounds), repeatable whatever else the machine does; needs
``gcc`` and valgrind's headers to build the client-request helper::

    valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m bench.sender_ledger --callgrind --rounds 42

then ``grep -H totals /tmp/cg.out.*`` (one file per kind, named in its ``desc:
Trigger`` line), divided by ``--rounds``. Measures whichever tree it runs from.

``--side receiver``: the receiving gateway's transaction instead, the one that
records a batch, signs and records its receipt and marks earlier receipts
``SENT`` (``pipeline._record_checked``; the receiver's consumer passes its
``ReceiptsInFlight`` as a running worker does, so the receipt of the round
before is marked in this round's transaction).
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))  # after the tree measured: only its helpers

from sqlalchemy import Connection  # noqa: E402
from support.gateways import deliver_queue  # noqa: E402

from bench import offline  # noqa: E402
from gateway.ledger.core import LedgerCore  # noqa: E402
from gateway.ledger.handoff import Handoff  # noqa: E402
from gateway.ledger.records import NewMessage  # noqa: E402
from gateway.services import delivery, receiving  # noqa: E402
from gateway.transport.base import Delivery, Disposition  # noqa: E402

SENDER, RECIPIENT = offline.SENDER, offline.RECIPIENT
# The transactions measured, by the function that opens them.
KINDS = {
    "one_round": "outbound messages recorded (their own transaction)",
    "transition_from": "a publish marked SENT",
    "_record_checked": "a receipt recorded, its messages DELIVERED",
}
RECEIVER_KINDS = {
    "_record_checked": "a batch recorded, its receipt signed, earlier ones SENT",
}
_CLIENT_REQUESTS = """
#include <valgrind/callgrind.h>
void cg_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *s) { CALLGRIND_DUMP_STATS_AT(s); }
"""


def _callgrind(workdir: Path) -> Any:
    """callgrind's client requests, from a helper built for this run."""
    source, library = workdir / "cg.c", workdir / "libcg.so"
    source.write_text(_CLIENT_REQUESTS, encoding="utf-8")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(str(library))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--warm", type=int, default=60)
    parser.add_argument("--sizes", default="1,2,3", help="messages per round, in turn")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--side", choices=("sender", "receiver"), default="sender")
    args = parser.parse_args()
    kinds = KINDS if args.side == "sender" else RECEIVER_KINDS
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="cafgw-sender-ledger-") as tmp:
        work = Path(tmp)
        pair = offline.pair(work)
        sender, receiver, transport = pair.sender, pair.receiver, pair.transport
        handoff = Handoff(delivery.outbox_lease(sender), lambda: None, 1000, lambda _claims: None)
        sender.ledger.handoff = handoff  # as ``Worker.start`` attaches it

        def sign(n: int) -> list[NewMessage]:
            return [sender.outbox.sign(env) for env in pair.fresh(n)]

        def one_round(k: int) -> None:
            made = sign(k)
            with sender.ledger.transaction() as conn:
                sender.ledger.record(made, conn)
            delivery.publish_outbox(sender, handed=handoff.take(500), claim=False)
            assert receive(k) == k
            assert deliver_queue(sender, f"caf.inbox.{SENDER}") == 1

        in_flight = receiving.ReceiptsInFlight()

        def receive(k: int) -> int:
            """The receiver's consumer: its receipts in flight kept across batches."""
            stop = threading.Event()
            handled = 0

            def handle(batch: Sequence[Delivery]) -> Sequence[Disposition]:
                nonlocal handled
                handled += len(batch)
                if not transport.depth(queue):
                    stop.set()
                return receiving.handle_batch(receiver, batch, in_flight)

            queue = f"caf.inbox.{RECIPIENT}"
            if transport.depth(queue):
                transport.consume([queue], handle, stop)
            return handled

        measured = sender if args.side == "sender" else receiver
        cpu_ns: dict[str, list[int]] = defaultdict(list)
        collecting: list[str | None] = [None]
        requests = _callgrind(work) if args.callgrind else None
        original = LedgerCore.transaction
        depth = [0]

        @contextmanager
        def timed(self: LedgerCore) -> Iterator[Connection]:
            if self is not measured.ledger or depth[0]:
                with original(self) as conn:
                    yield conn
                return
            kind = sys._getframe(2).f_code.co_name
            counted = requests is not None and collecting[0] == kind
            depth[0] += 1
            if counted:
                requests.cg_toggle()
            started = time.thread_time_ns()
            try:
                with original(self) as conn:
                    yield conn
            finally:
                cpu_ns[kind].append(time.thread_time_ns() - started)
                if counted:
                    requests.cg_toggle()
                depth[0] -= 1

        patched: Callable[[LedgerCore], AbstractContextManager[Connection]] = timed
        LedgerCore.transaction = patched  # type: ignore[method-assign,assignment]
        try:
            for i in range(args.warm):
                one_round(sizes[i % len(sizes)])
            cpu_ns.clear()
            if requests is not None:
                for kind in kinds:
                    collecting[0] = kind
                    requests.cg_zero()
                    for i in range(args.rounds):
                        one_round(sizes[i % len(sizes)])
                    collecting[0] = None
                    requests.cg_dump(kind.encode())
                print(f"one callgrind dump per kind, each of {args.rounds} transactions")
                return
            for i in range(args.rounds):
                one_round(sizes[i % len(sizes)])
        finally:
            LedgerCore.transaction = original  # type: ignore[method-assign]
            in_flight.finish()
            sender.ledger.engine.dispose()
            receiver.ledger.engine.dispose()
    print(f"messages per round: {args.sizes}; thread CPU per transaction, ms")
    for kind, what in kinds.items():
        times = sorted(cpu_ns[kind])
        mean = sum(times) / len(times) / 1e6
        print(f"{what:48s} mean {mean:.3f}  p50 {times[len(times) // 2] / 1e6:.3f}")


if __name__ == "__main__":
    main()
