"""Replicas of one gateway on a PostgreSQL ledger: throughput and CPU per message.

Rows of ``make bench`` (``python -m bench.run --replicas 1,2,3 --sender-replicas 1,2``;
alone: ``python -m bench.replicas``):

- **receiver replicas**: 1, 2, 3 ``cafgw run`` processes hosting 336 on one
  PostgreSQL ledger, idle; the bench then publishes 4,000 messages
  signed by 332 into 336's inbox at once (as 332's gateway publishes them)
  and times until every one is recorded and receipted in the receiving ledger.
- **sender replicas**: 1 and 2 processes hosting 332, idle; the bench puts
  10,000 signed messages in their outbox in one transaction, and times
  from its commit (whose NOTIFY wakes every replica at once) until every one
  is SENT (published, confirmed by the broker). No receiver runs: nothing is
  receipted, nothing re-sent in that time.

CPU per message: the replicas' processes (all threads, from ``/proc``) and,
separately, the PostgreSQL server processes serving the bench's database, over
the timed window, divided by the messages. Each row runs on a database of its
own on the machine's server (``CAFGW_BENCH_PG``, ``bench.bench_support``),
dropped after it. On a shared 2-core machine the broker, the database and
the replicas share both cores: expect little from more replicas, and compare
CPU per message, which should not grow with them.

- **busy neighbours** (``--neighbours N``): one receiver again, with N
  processes beside it that verify the same signed messages in a loop
  (``gateway.envelope`` on their own: parse, C14N, ECDSA; no ledger, no
  broker). Three receivers cost more CPU per message than one; these rows
  tell apart the two causes: if one receiver beside two busy neighbours costs
  as much as three receivers, the growth is the machine (three busy
  processes, the broker and the database on two cores make every
  instruction dearer: caches, scheduling), not the replicas' work on the
  ledger (locks, claims, smaller batches).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pika
from rich.table import Table
from sqlalchemy import func, select

from bench import cpu
from bench.bench_support import pg_backend_pids, pg_database
from gateway.context import Gateway, build
from gateway.envelope.keys import ensure_identity
from gateway.ledger.core import make_engine
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.settings import load_settings
from gateway.transport.base import OutgoingMessage, routing_key
from gateway.transport.memory import MemoryTransport
from gateway.transport.rabbit import RabbitTransport
from tests.integration.procs import (
    ALL,
    GatewayProcess,
    feed,
    free_port,
    signed_batch,
    write_config,
)

SENDER, RECIPIENT = "332", "336"
# Messages per row: senders publish ~10 times faster than receivers record, so more.
RECEIVED, SENT = 4000, 10_000


@dataclass
class ReplicaRow:
    """One line of the replicas table."""

    role: str  # "receiver" or "sender"
    replicas: int
    messages: int
    seconds: float
    msgs_per_s: float
    ratio_to_one: float | None
    gateway_cpu_ms_per_msg: float
    postgres_cpu_ms_per_msg: float
    load_average: float
    note: str = ""
    stage_cpu_ms_per_msg: dict[str, float] = field(default_factory=dict)
    """The replicas' CPU by stage (``gateway.cpu_budget``, summed over them) per message."""
    neighbours: int = 0
    """Busy processes beside the replicas (``busy_neighbours``), not counted in their CPU."""


@dataclass
class Bench:
    """What every row shares: the broker vhost, keys, a publisher and the signed messages."""

    workdir: Path
    amqp_url: str
    publisher: Gateway
    signed: list[NewMessage]

    def processes(self, tag: str, code: str, ledger_url: str, count: int) -> list[GatewayProcess]:
        """``count`` gateway processes hosting ``code`` on ``ledger_url``, started together."""
        procs = []
        for i in range(count):
            port = free_port()
            folder = write_config(
                self.workdir / f"{tag}-{i}",
                hosted=(code,),
                amqp_url=self.amqp_url,
                ledger_url=ledger_url,
                keys_dir=self.workdir / "keys",
                port=port,
                gateway={"cpu_budget": True},  # stage timers on /metrics
            )
            procs.append(
                GatewayProcess(f"{tag}-{i}", folder, port, self.workdir / f"{tag}-{i}.log")
            )
        errors: list[BaseException] = []

        def start(proc: GatewayProcess) -> None:
            try:
                proc.start(ready_timeout_s=120)
            except BaseException as exc:  # reported below, in the bench's thread
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(p,)) for p in procs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(150)
        if errors:
            stop_all(procs)
            raise RuntimeError(f"a replica did not start: {errors[0]}")
        return procs

    def purge(self, code: str) -> None:
        """Empty ``code``'s inbox (e.g. the receipts earlier rows sent to 332)."""
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            conn.channel().queue_purge(self.publisher.topology.inbox(code))
        finally:
            conn.close()


# A busy neighbour: the receiving side's CPU work without its ledger or broker.
# It verifies one signed message again and again until it is stopped.
NEIGHBOUR = """
import sys
from pathlib import Path
from gateway.envelope.trust import TrustStore
from gateway.envelope.verifying import Verifier
from gateway.settings import load_settings

config = Path(sys.argv[1])
body = Path(sys.argv[2]).read_bytes()
settings = load_settings(config, env={})
verifier = Verifier(
    TrustStore.from_settings(settings),
    max_bytes=settings.limits.max_message_bytes,
    max_depth=settings.limits.max_xml_depth,
)
print("ready", flush=True)
while True:
    verifier.verify(body)
"""


@contextmanager
def busy_neighbours(config_dir: Path, body: bytes, count: int) -> Iterator[list[int]]:
    """``count`` processes verifying ``body`` in a loop, stopped on exit; yields their pids."""
    if count == 0:
        yield []
        return
    sample = config_dir.parent / "neighbour-message.xml"
    sample.write_bytes(body)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", NEIGHBOUR, str(config_dir), str(sample)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a busy neighbour did not start (exit {proc.poll()})")
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def stop_all(procs: Sequence[GatewayProcess]) -> None:
    for proc in procs:
        proc.stop()


def open_bench(workdir: Path, amqp_url: str, count: int) -> Bench:
    """Keys, the broker topology of both authorities, and ``count`` messages signed by 332."""
    keys = workdir / "keys"
    folder = write_config(
        workdir / "publisher",
        hosted=(SENDER,),
        amqp_url=amqp_url,
        ledger_url=f"sqlite:///{workdir / 'publisher' / 'ledger.db'}",
        keys_dir=keys,
        port=free_port(),
    )
    settings = load_settings(folder, env={})
    for code in ALL:
        ensure_identity(code, settings.directory.get(code).name, keys)
    publisher = build(settings, RabbitTransport.from_settings(settings))
    publisher.transport.declare((SENDER, RECIPIENT))
    signed = signed_batch(publisher, SENDER, RECIPIENT, count)
    return Bench(workdir, amqp_url, publisher, signed)


def _cpu_s(pids: Sequence[int]) -> dict[int, float]:
    return {pid: cpu.proc_cpu_s(pid) or 0.0 for pid in pids}


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between the two readings (a process that appeared counts from 0)."""
    return sum(max(0.0, s - before.get(pid, 0.0)) for pid, s in after.items())


def _count(ledger: Ledger, *where: object) -> int:
    with ledger.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(messages).where(*where)).scalar())


def _timed(
    db: str,
    procs: Sequence[GatewayProcess],
    start: Callable[[], None],
    done: Callable[[], int],
    count: int,
    timeout_s: float,
    *,
    from_end: bool = False,
) -> tuple[float, float, float, int, dict[str, float]]:
    """Run ``start``, wait until ``done()`` reaches ``count``: (seconds, gateway CPU s,
    PostgreSQL CPU s, how many were done, the replicas' CPU s by stage). Timed and CPU
    counted from ``start``'s beginning, or from its end (``from_end``: nothing is done
    before it returns)."""
    pids = [p.proc.pid for p in procs if p.proc is not None]
    if from_end:
        start()  # the replicas sleep meanwhile: woken by its commit
    stages_before = _stages(procs)
    gw_before, pg_before = _cpu_s(pids), _cpu_s(pg_backend_pids(db))
    started = time.monotonic()
    if not from_end:
        start()
    reached = 0
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        reached = done()
        if reached >= count:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    gw_after, pg_after = _cpu_s(pids), _cpu_s(pg_backend_pids(db))
    stages = _stages(procs)
    by_stage = {k: v - stages_before.get(k, 0.0) for k, v in stages.items()}
    return seconds, _spent(gw_before, gw_after), _spent(pg_before, pg_after), reached, by_stage


def _stages(procs: Sequence[GatewayProcess]) -> dict[str, float]:
    """CPU seconds by stage, summed over the replicas (read from their /metrics)."""
    total: dict[str, float] = {}
    for proc in procs:
        for stage, seconds in cpu.scrape_stages(proc.port).items():
            total[stage] = total.get(stage, 0.0) + seconds
    return total


def receivers(
    bench: Bench, replicas: int, count: int, timeout_s: float, neighbours: int = 0
) -> ReplicaRow:
    """``replicas`` receiving processes drain ``count`` messages published at once,
    beside ``neighbours`` busy processes (``busy_neighbours``)."""
    outgoing = [
        OutgoingMessage(
            routing_key=routing_key(RECIPIENT, m.message_type, SENDER),
            body=m.body or b"",
            message_id=m.message_id,
            headers={"x-cafgw-sender": SENDER},
        )
        for m in bench.signed[:count]
    ]

    def publish() -> None:
        for start in range(0, count, 500):
            bench.publisher.transport.publish(outgoing[start : start + 500], 60)

    with pg_database() as (db, url):
        procs = bench.processes(f"receiver-{replicas}", RECIPIENT, url, replicas)
        reader = Ledger(make_engine(url, pool_size=1, max_overflow=0))
        try:
            receipted = (
                messages.c.direction == Direction.INBOUND.value,
                messages.c.message_type != "Receipt",
                messages.c.receipt_message_id.is_not(None),
            )
            body = bench.signed[0].body or b""
            with busy_neighbours(procs[0].config_dir, body, neighbours):
                seconds, gw_s, pg_s, done, stages = _timed(
                    db, procs, publish, lambda: _count(reader, *receipted), count, timeout_s
                )
            # Each replica receipts what it recorded: more replicas, smaller receipts.
            receipts = _count(
                reader,
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.message_type == "Receipt",
            )
        finally:
            stop_all(procs)
            reader.engine.dispose()
    row = _row("receiver", replicas, done, count, seconds, gw_s, pg_s, stages)
    row.neighbours = neighbours
    beside = f"; beside {neighbours} busy neighbours" if neighbours else ""
    row.note = f"{receipts} signed receipts{beside}" + (f"; {row.note}" if row.note else "")
    return row


def senders(bench: Bench, replicas: int, count: int, timeout_s: float) -> ReplicaRow:
    """``replicas`` sending processes publish ``count`` messages put in their outbox."""
    bench.purge(SENDER)  # receipts from the receiver rows: not this row's work
    with pg_database() as (db, url):
        procs = bench.processes(f"sender-{replicas}", SENDER, url, replicas)
        settings = procs[0].settings
        feeder = build(settings, MemoryTransport())  # records only, as the API would
        try:
            sent = (
                messages.c.direction == Direction.OUTBOUND.value,
                messages.c.status == Status.SENT.value,
            )
            seconds, gw_s, pg_s, done, stages = _timed(
                db,
                procs,
                lambda: feed(feeder, bench.signed[:count], chunk=count),
                lambda: _count(feeder.ledger, *sent),
                count,
                timeout_s,
                from_end=True,
            )
        finally:
            stop_all(procs)
            feeder.ledger.engine.dispose()
    bench.purge(RECIPIENT)
    return _row("sender", replicas, done, count, seconds, gw_s, pg_s, stages)


def _row(
    role: str,
    replicas: int,
    done: int,
    count: int,
    seconds: float,
    gw_s: float,
    pg_s: float,
    stages: dict[str, float],
) -> ReplicaRow:
    per = max(1, done)
    return ReplicaRow(
        role,
        replicas,
        done,
        round(seconds, 2),
        round(done / seconds, 1) if seconds else float("nan"),
        None,
        round(gw_s / per * 1000, 2),
        round(pg_s / per * 1000, 2),
        os.getloadavg()[0],
        "" if done >= count else f"only {done}/{count} within the timeout",
        {k: round(v / per * 1000, 3) for k, v in stages.items() if v > 0},
    )


def measure(
    workdir: Path,
    amqp_url: str,
    receiver_counts: Sequence[int],
    sender_counts: Sequence[int],
    received: int,
    sent: int,
    timeout_s: float = 300.0,
    neighbour_counts: Sequence[int] = (),
) -> list[ReplicaRow]:
    """Every requested row (``received`` messages per receiver row, ``sent`` per sender
    row), each with its ratio to the one-replica row of its role."""
    bench = open_bench(workdir, amqp_url, max(received, sent))
    rows: list[ReplicaRow] = []
    try:
        rows += [receivers(bench, n, received, timeout_s) for n in receiver_counts]
        rows += [receivers(bench, 1, received, timeout_s, n) for n in neighbour_counts]
        rows += [senders(bench, n, sent, timeout_s) for n in sender_counts]
    finally:
        bench.publisher.transport.close()
        bench.publisher.ledger.engine.dispose()
    for row in rows:
        one = next(
            (r for r in rows if r.role == row.role and r.replicas == 1 and not r.neighbours),
            None,
        )
        if one is not None and one.msgs_per_s:
            row.ratio_to_one = round(row.msgs_per_s / one.msgs_per_s, 2)
    return rows


def _replicas(row: ReplicaRow) -> str:
    return f"{row.replicas} + {row.neighbours} busy" if row.neighbours else str(row.replicas)


def table(rows: Sequence[ReplicaRow]) -> Table:
    out = Table(title="replicas of one gateway on a PostgreSQL ledger (bench.replicas)")
    for col in (
        "role", "replicas", "msgs", "s", "msgs/s", "ratio to 1",
        "gateway CPU ms/msg", "PostgreSQL CPU ms/msg", "load avg", "note",
    ):  # fmt: skip
        out.add_column(col)
    for r in rows:
        ratio = "-" if r.ratio_to_one is None else f"{r.ratio_to_one:.2f}"
        out.add_row(
            r.role, _replicas(r), str(r.messages), f"{r.seconds:.1f}", f"{r.msgs_per_s:.0f}",
            ratio, f"{r.gateway_cpu_ms_per_msg:.2f}", f"{r.postgres_cpu_ms_per_msg:.2f}",
            f"{r.load_average:.1f}", r.note,
        )  # fmt: skip
    return out


def stage_table(rows: Sequence[ReplicaRow]) -> Table:
    """The replicas' CPU ms per message by stage, one column per row."""
    out = Table(title="replicas: CPU ms per message by stage (gateway.cpu_budget, all replicas)")
    out.add_column("stage")
    for r in rows:
        out.add_column(f"{r.role} x{_replicas(r)}")
    stages = sorted({k for r in rows for k in r.stage_cpu_ms_per_msg})
    for stage in stages:
        out.add_row(stage, *(f"{r.stage_cpu_ms_per_msg.get(stage, 0.0):.3f}" for r in rows))
    return out


def main(argv: list[str] | None = None) -> int:
    """Only the replica rows (``make bench`` runs them too, through ``bench.run``)."""
    import argparse  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from bench.bench_support import rabbit_vhost  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--sender-replicas", default="1,2")
    parser.add_argument("--messages", type=int, default=RECEIVED, help="per receiver row")
    parser.add_argument("--sender-messages", type=int, default=SENT, help="per sender row")
    parser.add_argument(
        "--neighbours",
        default="",
        help="rows of one receiver beside N busy neighbours, e.g. '2' (none by default)",
    )
    args = parser.parse_args(argv)
    beside = [int(c) for c in args.neighbours.split(",") if c.strip()]
    receiving = [int(c) for c in args.replicas.split(",") if c.strip()]
    sending = [int(c) for c in args.sender_replicas.split(",") if c.strip()]
    with (
        rabbit_vhost("cafgw-bench-replicas") as url,
        tempfile.TemporaryDirectory(prefix="cafgw-bench-replicas-") as tmp,
    ):
        rows = measure(
            Path(tmp), url, receiving, sending, args.messages, args.sender_messages,
            neighbour_counts=beside,
        )  # fmt: skip
    Console(width=200).print(table(rows))
    Console(width=200).print(stage_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
