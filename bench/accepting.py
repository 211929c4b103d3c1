"""Does accepting a local record cost more as the sender's ledger grows? (issue 14)

``python -m bench.accepting [--records 10000] [--step 2000] [--distinct-children]``

A sending gateway (hosting 332, SQLite ledger in a temporary folder, the
in-memory transport, nothing published) accepts the whole-path bench's Dudley
export (``bench.whole_path.dudley_export``) through ``submit_local``, ``--step``
records at a time: adapter, the outbound decision and the reads behind it,
signing, the outbox. CPU (this thread's) and SQL statements per record are
printed for each step. Flat rows mean a record costs the same whatever the
ledger already holds. By default the export repeats the sample's four
children; ``--distinct-children`` gives every record a child of its own.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from support.gateways import memory_gateway, settings_for  # noqa: E402
from support.sql import captured  # noqa: E402

from bench.whole_path import SENDER, dudley_export  # noqa: E402
from gateway.services.outbound import submit_local  # noqa: E402


def measure(records: int, step: int, distinct_children: bool) -> list[tuple[int, float, float]]:
    """(records accepted before the step, CPU ms per record, statements per record)."""
    export = dudley_export(records, distinct_children)
    eol = b"\r\n" if b"\r\n" in export else b"\n"
    header, *rows = [line for line in export.split(eol) if line.strip()]
    out = []
    with tempfile.TemporaryDirectory(prefix="cafgw-accepting-") as tmp:
        folder = Path(tmp)
        gw = memory_gateway(
            folder,
            (SENDER,),
            settings=settings_for(folder, (SENDER,), ledger_url=f"sqlite:///{folder / 's.db'}"),
        )
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            data = eol.join([header, *chunk]) + eol
            with captured(gw.ledger.engine) as seen:
                began = time.thread_time()
                submit_local(gw, SENDER, "dudley-csv", io.BytesIO(data), "bench.csv")
                cpu_ms = (time.thread_time() - began) * 1000 / len(chunk)
            statements = len(seen)
            out.append((start, cpu_ms, statements / len(chunk)))
            print(
                f"records {start:7,}-{start + len(chunk):7,}: {cpu_ms:6.2f} ms CPU, "
                f"{statements / len(chunk):5.2f} statements per record",
                flush=True,
            )
        gw.ledger.engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=2_000)
    parser.add_argument("--distinct-children", action="store_true")
    args = parser.parse_args()
    measure(args.records, args.step, args.distinct_children)


if __name__ == "__main__":
    main()
