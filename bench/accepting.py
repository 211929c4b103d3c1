"""Does accepting a local record cost more as the sender's ledger grows? (issue 14)

``python -m bench.accepting [--records 10000] [--step 2000] [--distinct-children] [--logged N]``

A sending gateway (hosting 332, SQLite ledger in a temporary folder, the
in-memory transport, nothing published) accepts the whole-path bench's Dudley
export (``bench.whole_path.dudley_export``) through ``submit_local``, ``--step``
records at a time: adapter, the outbound decision and the reads behind it,
signing, the outbox. CPU (this thread's) and SQL statements per record are
printed for each step. Flat rows mean a record costs the same whatever the
ledger already holds. By default the export repeats the sample's four
children; ``--distinct-children`` gives every record a child of its own.
``--logged N`` first records N entries in the authority's issues log and N prior
agreements (as years of service gaps and out-of-area work leave them): a record
reads only the few its own plan asks about (2026-12-07), so its cost stays the same.
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
from gateway.cases import store as cases  # noqa: E402
from gateway.context import Gateway  # noqa: E402
from gateway.crossborder import issues_store  # noqa: E402
from gateway.model import IssueKind, IssueLogEntry  # noqa: E402
from gateway.services.outbound import submit_local  # noqa: E402


def log_earlier(gw: Gateway, count: int) -> None:
    """``count`` issues-log entries and prior agreements of ``SENDER``, none of the export's."""
    day = gw.clock()
    with gw.ledger.transaction() as conn:
        for n in range(count):
            entry = IssueLogEntry(
                entry_id=f"ISS-{SENDER}-bench{n:07d}",
                kind=IssueKind.SERVICE_GAP,
                reported_by_la=SENDER,
                concerns_la="333",
                description=f"no speech and language therapy slot in area {n}",
                raised_on=day.date(),
            )
            issues_store.store(conn, SENDER, entry, day)
            cases.add_agreement(
                conn, SENDER, f"Practitioner {n}", "333", "Line Manager", "Coordinator", day
            )


def measure(
    records: int, step: int, distinct_children: bool, logged: int = 0
) -> list[tuple[int, float, float]]:
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
        log_earlier(gw, logged)
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
    parser.add_argument("--logged", type=int, default=0, help="issues-log entries and agreements")
    args = parser.parse_args()
    measure(args.records, args.step, args.distinct_children, args.logged)


if __name__ == "__main__":
    main()
