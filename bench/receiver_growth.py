"""Does a received message cost more as the receiver's ledger grows? (issue 14)

``python -m bench.receiver_growth [--fill 20000] [--window 500] [--batch 50]
[--distinct]``

A receiving gateway (hosting 336, SQLite ledger in a temporary folder) takes
signed Assessments from 332 through the real receiving pipeline
(``handle_batch``: verify, validate, dedup, appliers, record) on the
in-memory transport: no broker, no other process, nothing draining its
inbox. CPU (this thread's) and SQL statements per message are measured over
a window of ``--window`` messages on a nearly empty ledger (after one
batch of warm-up), then again after each
quarter of ``--fill`` more messages went in. Flat rows mean a message costs
the same whatever the ledger holds.

By default every message carries the same record, as ``bench.run`` sends
it: the receiver records all but the first as repeats of that content
(``DUPLICATE``, not handed over again) and runs no appliers for them.
``--distinct`` gives each message a case of its own, so every message
goes through the appliers (case thread, consent register, existence index)
and waits in the inbox.

Signing (the sender's work) is done before each window and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from support.gateways import memory_gateway, settings_for  # noqa: E402
from support.sql import captured  # noqa: E402

from gateway.context import Gateway  # noqa: E402
from gateway.envelope import xmlsafe  # noqa: E402
from gateway.envelope.codec import element_to_envelope  # noqa: E402
from gateway.model import Assessment, Envelope  # noqa: E402
from gateway.services.receiving import handle_batch  # noqa: E402
from gateway.transport.base import Delivery, routing_key  # noqa: E402
from gateway.transport.memory import MemoryTransport  # noqa: E402
from gateway.transport.provenance import publishers_for  # noqa: E402

EXAMPLE = ROOT / "schemas" / "examples" / "assessment.xml"
SENDER, RECIPIENT = "332", "336"


class Feed:
    """Signed deliveries from 332 to 336's inbox, as the broker would hand them over."""

    def __init__(self, sender: Gateway, receiver: Gateway, distinct: bool) -> None:
        root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=1_000_000, max_depth=64)
        self.template = element_to_envelope(root)
        assert isinstance(self.template.body, Assessment)
        self.sender = sender
        self.queue = receiver.topology.inbox(RECIPIENT)
        self.user = sorted(publishers_for(receiver.settings.broker, SENDER))[0]
        self.distinct = distinct
        self.made = 0

    def take(self, n: int) -> list[Delivery]:
        out = []
        for _ in range(n):
            self.made += 1
            header = replace(
                self.template.header,
                message_id=str(uuid.uuid4()),
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
            body = self.template.body
            if self.distinct:
                ref = f"DUD-BENCH-{self.made:07d}"
                header = replace(header, correlation_id=ref)
                body = replace(body, case_ref=ref)  # type: ignore[type-var]
            signed = self.sender.outbox.sign(Envelope(header, body))
            assert signed.body is not None
            out.append(
                Delivery(
                    self.queue,
                    routing_key(RECIPIENT, "Assessment", SENDER),
                    signed.body,
                    signed.message_id,
                    {},
                    0,
                    self.made,
                    self.user,
                )
            )
        return out


def receive(gw: Gateway, deliveries: list[Delivery], batch: int) -> None:
    for start in range(0, len(deliveries), batch):
        handle_batch(gw, deliveries[start : start + batch])


def measure(fill: int, window: int, batch: int, distinct: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cafgw-growth-") as tmp:
        folder = Path(tmp)
        transport = MemoryTransport()
        sender = memory_gateway(
            folder,
            (SENDER,),
            transport=transport,
            settings=settings_for(folder, (SENDER,), ledger_url=f"sqlite:///{folder / 's.db'}"),
        )
        receiver = memory_gateway(
            folder,
            (RECIPIENT,),
            transport=transport,
            settings=settings_for(folder, (RECIPIENT,), ledger_url=f"sqlite:///{folder / 'r.db'}"),
        )
        feed = Feed(sender, receiver, distinct)
        rows = []
        # Warm-up (imports, compiled statements, caches), not measured.
        receive(receiver, feed.take(batch), batch)
        held = batch
        for step in range(5):
            if step:
                more = fill // 4
                receive(receiver, feed.take(more), batch)
                held += more
            deliveries = feed.take(window)
            with captured(receiver.ledger.engine) as seen:
                started = time.thread_time()
                receive(receiver, deliveries, batch)
                cpu_s = time.thread_time() - started
            statements = len(seen)
            held += window
            row = {
                "ledger_before": held - window,
                "cpu_ms_per_msg": round(cpu_s / window * 1000, 3),
                "statements_per_msg": round(statements / window, 2),
            }
            rows.append(row)
            print(
                f"ledger {row['ledger_before']:>7,} messages: "
                f"{row['cpu_ms_per_msg']:6.3f} ms CPU, "
                f"{row['statements_per_msg']:5.2f} statements per message",
                flush=True,
            )
        for gw in (sender, receiver):
            gw.ledger.engine.dispose()
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--distinct", action="store_true")
    parser.add_argument("--json", type=Path, help="write the rows and the load average here")
    args = parser.parse_args()
    load_start = os.getloadavg()
    rows = measure(args.fill, args.window, args.batch, args.distinct)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "when": datetime.now(UTC).isoformat(),
                    "args": vars(args) | {"json": str(args.json)},
                    "load_average": {"start": load_start, "end": os.getloadavg()},
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
