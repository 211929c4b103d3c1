"""What idle gateways cost their PostgreSQL ledger: transactions per second, counted by the server.

``python -m bench.idle_ledger [--replicas 1,2] [--seconds 20]``: for each count,
that many ``cafgw run`` processes of one gateway (hosting 332 and 336, the
project's config otherwise) on a PostgreSQL database of the bench's own, with
nothing to do; after ``--settle`` seconds, the server's ``xact_commit +
xact_rollback`` for that database (``pg_stat_database``) over ``--seconds``.
Also the processes' CPU over the same window. Then how promptly the replicas
hear work another process commits: ``--wakes`` single messages put in the
outbox from the bench's own engine (as the API of another replica, or
``cafgw send``, would), one every half second; the delay from each one's
insert to its SENT entry in the ledger (both stamped on this machine's clock).
The database and vhost are dropped after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench import cpu  # noqa: E402
from bench.bench_support import pg_commits, pg_database, rabbit_vhost  # noqa: E402
from gateway.context import build  # noqa: E402
from gateway.envelope.keys import ensure_identity  # noqa: E402
from gateway.ledger.status import Status  # noqa: E402
from gateway.ledger.tables import history, messages  # noqa: E402
from gateway.settings import Settings, load_settings  # noqa: E402
from gateway.transport.memory import MemoryTransport  # noqa: E402
from tests.integration.procs import (  # noqa: E402
    ALL,
    GatewayProcess,
    feed,
    free_port,
    signed_batch,
    write_config,
)

HOSTED = ("332", "336")


@dataclass(frozen=True)
class IdleRow:
    replicas: int
    seconds: float
    transactions_per_s: float
    cpu_percent_of_a_core: float  # all the replicas together
    load_average: float
    wake_p50_ms: float | None = None  # another process's insert -> SENT
    wake_max_ms: float | None = None


def wake_delays(settings: Settings, count: int) -> list[float]:
    """Seconds from each of ``count`` single outbox inserts (from an engine of our own)
    to its SENT entry."""
    feeder = build(settings, MemoryTransport())  # records only, never publishes
    try:
        for _ in range(count):
            feed(feeder, signed_batch(feeder, "332", "336", 1))
            time.sleep(0.5)
        time.sleep(2.0)
        with feeder.ledger.transaction() as conn:
            rows = conn.execute(
                select(messages.c.created_at, history.c.at)
                .join(history, history.c.message_pk == messages.c.id)
                .where(history.c.status == Status.SENT.value, messages.c.sender == "332")
            ).all()
    finally:
        feeder.ledger.engine.dispose()
    return [(sent - made).total_seconds() for made, sent in rows]


def idle(
    workdir: Path, amqp_url: str, replicas: int, settle_s: float, window_s: float, wakes: int
) -> IdleRow:
    keys = workdir / "keys"
    probe = load_settings(ROOT / "config", env={}, overrides={"keys_dir": str(keys)})
    for code in ALL:
        ensure_identity(code, probe.directory.get(code).name, keys)
    with pg_database("cafgw_idle") as (db, url):
        procs = []
        try:
            for i in range(replicas):
                port = free_port()
                folder = write_config(
                    workdir / f"idle-{replicas}-{i}",
                    hosted=HOSTED,
                    amqp_url=amqp_url,
                    ledger_url=url,
                    keys_dir=keys,
                    port=port,
                )
                proc = GatewayProcess(f"idle-{i}", folder, port, workdir / f"idle-{i}.log")
                proc.start(ready_timeout_s=120)
                procs.append(proc)
            time.sleep(settle_s)
            pids = [p.proc.pid for p in procs if p.proc is not None]
            cpu_before = sum(cpu.proc_cpu_s(pid) or 0.0 for pid in pids)
            before, started = pg_commits(db), time.monotonic()
            time.sleep(window_s)
            after, elapsed = pg_commits(db), time.monotonic() - started
            cpu_after = sum(cpu.proc_cpu_s(pid) or 0.0 for pid in pids)
            delays = wake_delays(procs[0].settings, wakes) if wakes else []
        finally:
            for proc in procs:
                proc.stop()
    return IdleRow(
        replicas,
        round(elapsed, 1),
        round((after - before) / elapsed, 1),
        round((cpu_after - cpu_before) / elapsed * 100, 1),
        os.getloadavg()[0],
        round(statistics.median(delays) * 1000, 1) if delays else None,
        round(max(delays) * 1000, 1) if delays else None,
    )


def table(rows: list[IdleRow]) -> Table:
    out = Table(title="idle gateways on one PostgreSQL ledger (bench.idle_ledger)")
    columns = ("replicas", "window s", "transactions/s", "CPU % of a core", "load avg")
    for col in (*columns, "wake p50 ms", "wake max ms"):
        out.add_column(col)
    for r in rows:
        out.add_row(
            str(r.replicas),
            f"{r.seconds:.0f}",
            f"{r.transactions_per_s:.1f}",
            f"{r.cpu_percent_of_a_core:.1f}",
            f"{r.load_average:.1f}",
            "-" if r.wake_p50_ms is None else f"{r.wake_p50_ms:.0f}",
            "-" if r.wake_max_ms is None else f"{r.wake_max_ms:.0f}",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_ledger", description=__doc__)
    parser.add_argument("--replicas", default="1,2", help="replica counts, one row each")
    parser.add_argument("--seconds", type=float, default=20.0, help="counting window")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after start")
    parser.add_argument("--wakes", type=int, default=20, help="single messages for wake delays")
    args = parser.parse_args(argv)
    rows = []
    with rabbit_vhost("cafgw-idle") as url, tempfile.TemporaryDirectory(prefix="cafgw-idle-") as d:
        for n in (int(c) for c in args.replicas.split(",") if c):
            rows.append(idle(Path(d), url, n, args.settle, args.seconds, args.wakes))
    Console().print(table(rows))
    print([asdict(r) for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
