"""``make bench``: raw RabbitMQ limit beside cafgw end to end, on a vhost of its own.

Two measurements, side by side on the same broker:

- **raw pika**: pipelined publisher confirms (``AsyncPublisher``, the code
  the gateway publishes with) into a quorum queue, drained by a
  BlockingConnection consumer with batched acks; same-size payloads (a
  signed Assessment envelope). This is the transport's limit.
- **cafgw**: canonical Assessment -> codec -> XMLDSig sign -> outbox
  (sender gateway, worker threads in this process) -> RabbitMQ -> verify,
  validate, dedup, record (receiver gateway, a ``cafgw run`` process) ->
  batched signed receipt -> verified by the sender -> DELIVERED.
  Latency is from the outbox insert to DELIVERED, both on this process's
  clock, read from the sender's ledger.

Each is run at offered rates of 50, 200 and 500 msgs/s (latency
percentiles) and flat out for 10,000 messages (throughput); ``BENCH_FULL=1``
adds a 100,000-message run. These rows run both gateways as deployed, with
their stage timers off. Peak RSS is reported per process, and the CPU
budget (``bench.cpu``): CPU ms per message of each process, beside raw pika's;
by stage on each side from one more flat-out row of ``--budget-count``
messages (5,000) with the stage timers on (``cpu_budget``), which cost about
4 % of a message's CPU. Then replicas of one gateway on a PostgreSQL ledger
(``bench.replicas``: 1, 2, 3 receivers and 1, 2 senders; ``--replicas ''
--sender-replicas ''`` skips them). Results go to
``bench/results/<utc stamp>.json`` and rich tables.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cpu, replicas, whole_path  # noqa: E402
from bench.bench_support import (  # noqa: E402
    RowPeak,
    proc_rss_mb,
    rabbit_vhost,
    self_rss_mb,
)
from gateway.context import Gateway, build  # noqa: E402
from gateway.cpu_budget import BUDGET  # noqa: E402
from gateway.envelope import xmlsafe  # noqa: E402
from gateway.envelope.codec import element_to_envelope  # noqa: E402
from gateway.ledger.core import make_engine  # noqa: E402
from gateway.ledger.records import NewMessage  # noqa: E402
from gateway.ledger.status import Direction, Status  # noqa: E402
from gateway.ledger.store import Ledger  # noqa: E402
from gateway.ledger.tables import history, messages  # noqa: E402
from gateway.model import Envelope  # noqa: E402
from gateway.transport.base import OutgoingMessage  # noqa: E402
from gateway.transport.publisher import AsyncPublisher  # noqa: E402
from gateway.transport.rabbit import RabbitTransport  # noqa: E402
from gateway.transport.reconnect import ReconnectPolicy, parameters  # noqa: E402
from gateway.worker import Worker  # noqa: E402
from tests.integration.procs import GatewayProcess, free_port, write_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXAMPLE = ROOT / "schemas" / "examples" / "assessment.xml"
SENDER, RECIPIENT = "332", "336"
console = Console(width=None if sys.stdout.isatty() else 200)


@dataclass
class Row:
    """One line of the results table."""

    system: str
    run: str  # "rate 200/s" or "flat out 10000"
    messages: int
    msgs_per_s: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    per_message_ms: float | None = None  # wall time per message in a flat-out run
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    note: str = ""
    cpu_ms_per_msg: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU budget: side -> stage -> ms per message (``bench.cpu``)."""


def percentiles(latencies_s: list[float]) -> tuple[float, float, float]:
    if len(latencies_s) < 2:
        value = latencies_s[0] * 1000 if latencies_s else float("nan")
        return value, value, value
    q = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


def paced(count: int, rate: float | None, send: Callable[[int, int], None], chunk: int) -> None:
    """Call ``send(start, n)`` for ``count`` items: at ``rate`` per second, or flat out."""
    started = time.monotonic()
    done = 0
    while done < count:
        if rate is None:
            n = min(chunk, count - done)
        else:
            due = int((time.monotonic() - started) * rate) + 1
            n = min(due - done, count - done)
            if n <= 0:
                # Asleep until the next one is due: a fixed short nap woke this
                # process (the sender's, in the end-to-end rows) 500 times a
                # second, taking its GIL from the gateway's own threads.
                time.sleep(max(0.0, started + done / rate - time.monotonic()))
                continue
        send(done, n)
        done += n


# --- raw pika ---------------------------------------------------------------


def raw_pika_apart(url: str, payload: bytes, count: int, rate: float | None, label: str) -> Row:
    """``raw_pika`` in a process of its own.

    Run in the bench's process, its timestamps (two dicts of ``count`` entries)
    and pika's buffers stayed in the peak RSS reported for the sender gateway,
    which lives there too (100,000 messages: 169 MB before the sender's row
    began), and the sender's idle threads in the raw client's CPU.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(raw_pika, url, payload, count, rate, label).result()


def raw_pika(url: str, payload: bytes, count: int, rate: float | None, label: str) -> Row:
    """Publish ``count`` payloads with pipelined confirms; a consumer drains and timestamps."""
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    params = parameters(url, ReconnectPolicy())
    setup = pika.BlockingConnection(params)
    channel = setup.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    setup.close()
    sent_at: dict[str, float] = {}
    received: dict[str, float] = {}
    finished = threading.Event()

    def consume() -> None:
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=500)
        pending = 0
        last_tag = 0
        for method, props, _body in ch.consume(queue, inactivity_timeout=0.05):
            if method is None:
                if pending:
                    ch.basic_ack(last_tag, multiple=True)
                    pending = 0
                if len(received) >= count:
                    break
                continue
            received[props.message_id] = time.perf_counter()
            last_tag = method.delivery_tag
            pending += 1
            if pending >= 100:
                ch.basic_ack(last_tag, multiple=True)
                pending = 0
        ch.cancel()
        conn.close()
        finished.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    publisher = AsyncPublisher(params, "", ReconnectPolicy())

    def send(start: int, n: int) -> None:
        batch = []
        for i in range(start, start + n):
            mid = f"raw-{i}"
            sent_at[mid] = time.perf_counter()
            batch.append(OutgoingMessage(queue, payload, mid, exchange=""))
        publisher.publish(batch, 60)

    broker = cpu.broker_pid()
    cpu_before, broker_before = time.process_time(), cpu.proc_cpu_s(broker)
    started = time.perf_counter()
    paced(count, rate, send, chunk=500)
    finished.wait(300)
    cpu_after, broker_after = time.process_time(), cpu.proc_cpu_s(broker)
    elapsed = max(received.values()) - started if received else float("nan")
    publisher.close()
    lat = [received[m] - sent_at[m] for m in received]
    p50, p95, p99 = percentiles(lat)
    return Row(
        "raw pika (confirms)",
        label,
        len(received),
        len(received) / elapsed,
        p50,
        p95,
        p99,
        elapsed / max(1, len(received)) * 1000,
        {"raw client": self_rss_mb()},
        cpu_ms_per_msg=cpu.client_budget(
            cpu_before, cpu_after, broker_before, broker_after, len(received)
        ),
    )


# --- cafgw end to end --------------------------------------------------------


@dataclass
class Rig:
    """A sender gateway in this process and a receiver gateway process."""

    sender: Gateway
    worker: Worker
    receiver: GatewayProcess
    template: Envelope
    reader: Ledger
    """The sender's ledger on an engine of its own: the bench's reads stay out of the budget."""
    rss_peak_mb: float = 0.0
    """The highest resident set of this process while a row ran (``RowPeak``)."""

    def sign(self, n: int) -> list[NewMessage]:
        out = []
        for _ in range(n):
            header = replace(
                self.template.header,
                message_id=str(uuid.uuid4()),
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
            out.append(self.sender.outbox.sign(Envelope(header, self.template.body)))
        return out

    def close(self) -> None:
        self.worker.close()
        self.sender.transport.close()
        self.worker.consumer_transport.close()
        self.receiver.stop()
        self.reader.engine.dispose()


def open_rig(
    workdir: Path, url: str, check_processes: int = 0, *, stage_timers: bool = True
) -> Rig:
    """Both gateways; ``stage_timers`` switches ``cpu_budget`` on in both (the
    gateways as deployed have it off: ``--budget-count``)."""
    from gateway.envelope.keys import ensure_identity  # noqa: PLC0415
    from gateway.settings import load_settings  # noqa: PLC0415

    try:  # as ``cafgw run`` does before its threads start; absent from older trees
        from gateway.heap import cap_malloc_arenas  # noqa: PLC0415
    except ImportError:
        pass
    else:
        cap_malloc_arenas()
    keys = workdir / "keys"
    folders = {}
    for name, code in (("receiver", RECIPIENT), ("sender", SENDER)):
        options: dict[str, Any] = {"cpu_budget": stage_timers}
        if name == "receiver" and check_processes:
            # The sender's received batches are receipts, one per batch: too few to share.
            options["check_processes"] = check_processes
        folders[name] = write_config(
            workdir / name,
            hosted=(code,),
            amqp_url=url,
            ledger_url=f"sqlite:///{workdir / name / 'ledger.db'}",
            keys_dir=keys,
            port=free_port(),
            gateway=options,
        )
    settings = load_settings(folders["sender"], env={})
    for code in (SENDER, RECIPIENT):
        ensure_identity(code, settings.directory.get(code).name, keys)
    receiver = GatewayProcess("receiver", folders["receiver"], 0, workdir / "receiver.log")
    receiver.port = load_settings(folders["receiver"], env={}).api.port
    receiver.start()
    sender = build(settings, RabbitTransport.from_settings(settings))
    BUDGET.enable(stage_timers)
    if stage_timers:  # as a gateway does: the pool's listeners only with cpu_budget on
        BUDGET.watch_engine(sender.ledger.engine)
    worker = Worker(sender, RabbitTransport.from_settings(settings))
    worker.start()
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=1_000_000, max_depth=64)
    template = element_to_envelope(root)
    template = Envelope(replace(template.header, sender=SENDER, recipient=RECIPIENT), template.body)
    reader = Ledger(make_engine(settings.database.url), sender.clock)
    try:  # as ``cafgw run`` does once started; absent from trees before it (bench/ab.sh)
        from gateway.heap import freeze_startup  # noqa: PLC0415
    except ImportError:
        pass
    else:
        freeze_startup()
    return Rig(sender, worker, receiver, template, reader)


def checkers_rss_mb(pid: int | None) -> dict[str, float]:
    """``{"receiver checks": MB}``: the peak RSS of the receiver's largest check process."""
    peaks = []
    for child in cpu.descendants(pid) if pid is not None else []:
        try:
            peaks.append(proc_rss_mb(child))
        except OSError:
            continue  # ended meanwhile
    return {"receiver checks": max(peaks)} if peaks else {}


def delivered_count(ledger: Ledger, since_pk: int) -> int:
    """How many rows after ``since_pk`` have become DELIVERED (only outbound ones do)."""
    with ledger.transaction() as conn:
        found = conn.scalar(
            select(func.count()).where(
                history.c.message_pk > since_pk, history.c.status == Status.DELIVERED.value
            )
        )
    return int(found or 0)


def delivered_times(ledger: Ledger, since_pk: int) -> dict[int, tuple[datetime, datetime | None]]:
    """For outbound rows after ``since_pk``: (outbox insert, DELIVERED) times."""
    with ledger.transaction() as conn:
        created = {
            pk: at
            for pk, at in conn.execute(
                select(messages.c.id, messages.c.created_at).where(
                    messages.c.id > since_pk,
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.message_type != "Receipt",
                )
            ).all()
        }
        done = {
            pk: at
            for pk, at in conn.execute(
                select(history.c.message_pk, history.c.at).where(
                    history.c.message_pk > since_pk, history.c.status == Status.DELIVERED.value
                )
            ).all()
        }
    return {pk: (at, done.get(pk)) for pk, at in created.items()}


def cafgw(rig: Rig, count: int, rate: float | None, label: str, timeout_s: float) -> Row:
    gw = rig.sender
    with rig.reader.transaction() as conn:
        since = conn.execute(select(messages.c.id).order_by(messages.c.id.desc())).first()
    since_pk = int(since[0]) if since else 0
    sign_s = 0.0

    def send(_start: int, n: int) -> None:
        nonlocal sign_s
        t = time.perf_counter()
        made = rig.sign(n)
        sign_s += time.perf_counter() - t
        with gw.ledger.transaction() as conn:
            gw.ledger.record(made, conn)

    receiver_pid = rig.receiver.proc.pid if rig.receiver.proc else None
    broker = cpu.broker_pid()
    before = cpu.snapshot(rig.receiver.port, receiver_pid, broker, ending=False)
    started = time.monotonic()
    # The sender gateway's resident set while it works; the bench's own reads of
    # every message's times, after the run, are not the gateway's.
    with RowPeak() as rss:
        paced(count, rate, send, chunk=200)
        deadline = time.monotonic() + timeout_s
        # Counted in SQL while waiting; the times are read once, after the CPU window:
        # reading every row's times each 0.5 s cost this process (the sender's) CPU
        # growing with the run (+0.5 ms per message at 100,000). The count itself reads
        # every row of the run so far, so it is taken less often as the run goes on
        # (every 0.5 s, or 2 % of the time waited): a bounded share of the CPU window.
        # Throughput and latency come from the ledger's times, not from these looks.
        while time.monotonic() < deadline and delivered_count(rig.reader, since_pk) < count:
            time.sleep(max(0.5, (time.monotonic() - started) / 50))
    rig.rss_peak_mb = max(rig.rss_peak_mb, rss.peak_mb)
    after = cpu.snapshot(rig.receiver.port, receiver_pid, broker, ending=True)
    times = delivered_times(rig.reader, since_pk)
    done = {pk: (c, d) for pk, (c, d) in times.items() if d is not None}
    lat = [(d - c).total_seconds() for c, d in done.values()]
    if done:
        first = min(c for c, _ in done.values())
        last = max(d for _, d in done.values())
        elapsed = (last - first).total_seconds()
    else:
        elapsed = time.monotonic() - started
    p50, p95, p99 = percentiles(lat)
    return Row(
        "cafgw end to end",
        label,
        len(done),
        len(done) / elapsed if elapsed else float("nan"),
        p50,
        p95,
        p99,
        elapsed / max(1, len(done)) * 1000,
        {
            # While the gateway worked, in this and the earlier rows (``RowPeak``).
            "sender+bench": rig.rss_peak_mb,
            "receiver": proc_rss_mb(rig.receiver.proc.pid) if rig.receiver.proc else float("nan"),
            # Its largest check process (and the fork server that starts them), if any.
            **checkers_rss_mb(rig.receiver.proc.pid if rig.receiver.proc else None),
        },
        f"{len(done)}/{count} delivered; signing {sign_s / max(1, count) * 1000:.2f} ms/msg",
        cpu.budget(before, after, len(done)),
    )


# --- main --------------------------------------------------------------------


def adapter_rows(records: int) -> list[dict[str, Any]]:
    """Rows from ``bench.adapters_bench.measure(records)`` when that module exists."""
    try:
        module = importlib.import_module("bench.adapters_bench")
    except ModuleNotFoundError:
        return []
    measured = module.measure(records)
    return [dict(r) for r in measured]


def render(rows: list[Row], adapters: list[dict[str, Any]]) -> None:
    table = Table(title="cafgw bench (2 cores, one broker, own vhost)")
    columns = ("system", "run", "msgs", "msgs/s", "p50 ms", "p95 ms", "p99 ms", "ms/msg")
    for col in (*columns, "peak RSS MB", "note"):
        table.add_column(col)

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for r in rows:
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
        table.add_row(
            r.system,
            r.run,
            str(r.messages),
            f"{r.msgs_per_s:.0f}",
            f(r.p50_ms),
            f(r.p95_ms),
            f(r.p99_ms),
            f(r.per_message_ms),
            rss,
            r.note,
        )
    console.print(table)
    raw_rows = {r.run: r for r in rows if r.system.startswith("raw pika")}
    for r in rows:
        if r.system == "cafgw end to end" and r.cpu_ms_per_msg:
            raw = raw_rows.get(r.run)
            console.print(
                cpu.budget_table(
                    r.run,
                    r.cpu_ms_per_msg,
                    raw.cpu_ms_per_msg if raw else None,
                    (r.msgs_per_s, raw.msgs_per_s if raw else None),
                )
            )
    if adapters:
        at = Table(title="adapters (bench.adapters_bench)")
        for key in adapters[0]:
            at.add_column(str(key))
        for a in adapters:
            at.add_row(*(str(v) for v in a.values()))
        console.print(at)


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def measure_replicas(
    receiver_counts: list[int], sender_counts: list[int], received: int, sent: int
) -> list[replicas.ReplicaRow]:
    """The replica rows, on a vhost and PostgreSQL databases of their own."""
    if not receiver_counts and not sender_counts:
        return []
    with (
        rabbit_vhost("cafgw-bench-replicas") as url,
        tempfile.TemporaryDirectory(prefix="cafgw-bench-replicas-") as tmp,
    ):
        rows = replicas.measure(Path(tmp), url, receiver_counts, sender_counts, received, sent)
    for row in rows:
        console.print(row)
    return rows


def budget_row(workdir: Path, url: str, args: argparse.Namespace) -> Row:
    """Flat out ``--budget-count`` messages with both gateways' stage timers on: the
    row the CPU budget by stage is read from."""
    rig = open_rig(workdir, url, args.check_processes, stage_timers=True)
    try:
        # Warmed as the timed rows' rig was by the rows before its flat-out one (as
        # bench.hops warms its own): the first messages pay for connections and caches.
        cafgw(rig, min(500, args.budget_count), None, "warm-up", 120)
        n = args.budget_count
        return cafgw(rig, n, None, f"flat out {n}, stage timers on", max(300, n / 20))
    finally:
        rig.close()
        BUDGET.enable(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="flat-out run size")
    parser.add_argument("--full", action="store_true", help="also 100,000 (or BENCH_FULL=1)")
    parser.add_argument("--rates", default="50,200,500")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument(
        "--budget-count",
        type=int,
        default=5_000,
        help="messages of the row run with stage timers on, for the CPU budget (0 skips)",
    )
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--skip-cafgw", action="store_true")
    parser.add_argument(
        "--adapter-records", type=int, default=100_000, help="records per adapter export"
    )
    parser.add_argument(
        "--check-processes",
        type=int,
        default=1,
        help="the receiver's check_processes (worker processes sharing its checks)",
    )
    parser.add_argument(
        "--path-records",
        type=int,
        default=10_000,
        help="Dudley records for the user's whole path (bench.whole_path); 0 skips it",
    )
    parser.add_argument(
        "--replicas", default="1,2,3", help="receiver replica counts on PostgreSQL ('' skips)"
    )
    parser.add_argument(
        "--sender-replicas", default="1,2", help="sender replica counts on PostgreSQL ('' skips)"
    )
    parser.add_argument(
        "--replica-messages", type=int, default=replicas.RECEIVED, help="per receiver row"
    )
    parser.add_argument(
        "--sender-replica-messages", type=int, default=replicas.SENT, help="per sender row"
    )
    args = parser.parse_args(argv)
    full = args.full or os.environ.get("BENCH_FULL") == "1"
    rates = [float(r) for r in args.rates.split(",") if r]
    sizes = [args.count] + ([100_000] if full else [])
    load_before = os.getloadavg()
    rows: list[Row] = []
    payload = b""
    with rabbit_vhost() as url, tempfile.TemporaryDirectory(prefix="cafgw-bench-") as tmp:
        # The timed rows measure the gateways as deployed: stage timers off. They cost
        # about 4 % of a message's CPU (``docs/performance.md``, 2026-12-07), so the
        # CPU budget by stage comes from a row of its own, with them on.
        rig = open_rig(Path(tmp), url, args.check_processes, stage_timers=False)
        payload = rig.sign(1)[0].body or b""
        try:
            for rate in rates:
                n = int(rate * args.rate_seconds)
                if not args.skip_raw:
                    rows.append(raw_pika_apart(url, payload, n, rate, f"rate {rate:.0f}/s"))
                if not args.skip_cafgw:
                    rows.append(cafgw(rig, n, rate, f"rate {rate:.0f}/s", 120))
                console.print(rows[-1])
            for n in sizes:
                if not args.skip_raw:
                    rows.append(raw_pika_apart(url, payload, n, None, f"flat out {n}"))
                if not args.skip_cafgw:
                    rows.append(cafgw(rig, n, None, f"flat out {n}", max(300, n / 20)))
                console.print(rows[-1])
        finally:
            rig.close()
    if args.budget_count and not args.skip_cafgw:
        with (
            rabbit_vhost("cafgw-bench-budget") as url,
            tempfile.TemporaryDirectory(prefix="cafgw-bench-budget-") as tmp,
        ):
            rows.append(budget_row(Path(tmp), url, args))
        console.print(rows[-1])
    replica_rows = measure_replicas(
        _counts(args.replicas),
        _counts(args.sender_replicas),
        args.replica_messages,
        args.sender_replica_messages,
    )
    path = whole_path.measure(args.path_records) if args.path_records else None
    adapters = adapter_rows(args.adapter_records) if args.adapter_records else []
    render(rows, adapters)
    if replica_rows:
        console.print(replicas.table(replica_rows))
        console.print(replicas.stage_table(replica_rows))
    if path is not None:
        console.print(whole_path.table(path))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "cpus": os.cpu_count(),
                "load_average": {"start": load_before, "end": os.getloadavg()},
                "payload_bytes": len(payload),
                "rows": [asdict(r) for r in rows],
                "whole_path": path,
                "replicas": [asdict(r) for r in replica_rows],
                "adapters": adapters,
            },
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
