"""The user's whole path: a Dudley export POSTed to the API until every record is handed over.

A 10,000-record Dudley CSV (the sample's rows repeated with fresh case
references) is POSTed in one request to the sending gateway's API
(``POST /v1/messages?adapter=dudley-csv``, Dudley's key): adapter -> policy
-> sign -> outbox -> publish -> RabbitMQ -> verify -> appliers -> record on
the receiving gateway, which hosts every other authority the records go to,
-> handed to each receiving local system over the pull API (``GET
/v1/inbox``, then one ``POST /v1/inbox/ack`` for what it served) -> signed receipt ->
``DELIVERED`` at the sender. Dudley's own coordinator notices travel the
same way to Dudley's inbox on the sending gateway.

Both gateways are ``cafgw run`` processes (SQLite ledgers, CPU budget on);
the local systems and the clock are this process. Reported: records/s
accepted by the API, time to the last handover and to the last DELIVERED,
records/s end to end, and each gateway's CPU budget and peak RSS.

Run on its own: ``python -m bench.whole_path [RECORDS] [--distinct-children]``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from sqlalchemy import select

from bench import cpu
from bench.bench_support import proc_rss_mb, rabbit_vhost
from gateway.api.auth import ApiKeys
from gateway.envelope.keys import ensure_identity
from gateway.identifiers import upn_check_letter
from gateway.ledger.core import make_engine
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.settings import load_settings
from tests.integration.procs import GatewayProcess, free_port, write_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
SENDER = "332"
RECEIVING = ("330", "333", "334", "335", "336")


def dudley_export(records: int, distinct_children: bool = False) -> bytes:
    """The sample's data rows repeated ``records`` times with unique case references.

    The sample has four children, so by default each recurs every fourth record:
    a register of four children with 2,500 records each, whose consent turns on
    and off with every round. ``distinct_children``: each record's child gets a
    UPN of its own (a real register's shape: one record per child), the rest of
    the row as the sample has it.
    """
    data = SAMPLE.read_bytes()
    eol = b"\r\n" if b"\r\n" in data else b"\n"
    header, *rows = [line for line in data.split(eol) if line.strip()]
    out = [header]
    for n in range(records):
        row = rows[n % len(rows)]
        ref = re.match(rb"DUD-\d{4}-\d+", row)
        assert ref is not None, "sample rows start with their case reference"
        row = row.replace(ref.group(0), b"DUD-B%08d" % n, 1)
        case_ref, upn, rest = row.split(b",", 2)
        if distinct_children and upn:
            row = b",".join((case_ref, _upn(n).encode(), rest))
        out.append(row)
    return eol.join(out) + eol


def _upn(n: int) -> str:
    """A valid UPN of Dudley (332) for the ``n``-th bench child."""
    digits = f"332{n:08d}"  # LA code, then eight digits standing for school, year, serial
    return upn_check_letter("?" + digits + "0") + digits + "0"


@dataclass
class LocalSystem:
    """One receiving local system on the pull connector: GET the inbox, ack what it served."""

    base: str
    key: str
    authority: str
    handed: Counter[str] = field(default_factory=Counter)
    last_ack: float = 0.0
    errors: list[str] = field(default_factory=list)
    # Answers other than 200, by request and status ("GET /v1/inbox 503": n).
    refused: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=120) as client:
            while not self.stop.is_set():
                try:
                    answer = client.get("/v1/inbox", params={"limit": 500})
                    if answer.status_code != 200:
                        self.refused[f"GET /v1/inbox {answer.status_code}"] += 1
                        self.errors.append(f"inbox: {answer.status_code} {answer.text[:300]}")
                        self.stop.wait(0.5)
                        continue
                    items = [i["message_id"] for i in answer.json()]
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors.append(repr(exc)[:200])
                    self.stop.wait(0.5)
                    continue
                if not items:
                    self.stop.wait(0.1)
                    continue
                self._ack_all(client, items)

    def _ack_all(self, client: httpx.Client, items: list[str]) -> None:
        # One batch acknowledgement per inbox read (POST /v1/inbox/ack), as a
        # local system that stored what it was served would send it.
        answer = client.post("/v1/inbox/ack", json={"message_ids": items})
        if answer.status_code != 200:
            self.refused[f"POST /v1/inbox/ack {answer.status_code}"] += 1
            self.errors.append(f"ack of {len(items)}: {answer.status_code} {answer.text[:300]}")
            return
        with self._lock:
            for item in answer.json():
                if item["outcome"] == "acknowledged":
                    self.handed[item["message_id"]] += 1
                else:
                    self.errors.append(f"ack {item['message_id']}: {item['outcome']}")
            self.last_ack = time.monotonic()


def _issue_key(keys: ApiKeys, code: str) -> str:
    """A key for the local system of ``code``, not throttled: it acks every message."""
    try:
        return keys.issue(code, holder=f"bench local system {code}", rate_per_minute=10**7)
    except TypeError:  # an older gateway (A/B runs): keys had no holder or rate
        return keys.issue(code)


def _expected(ledger_url: str, since: datetime) -> tuple[dict[str, set[str]], set[int]]:
    """Messages the export put in Dudley's outbox: ids per recipient, and their keys."""
    engine = make_engine(ledger_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.id, messages.c.message_id, messages.c.recipient).where(
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.authority == SENDER,
                    messages.c.message_type != "Receipt",
                    messages.c.status.not_in([Status.HELD_LOCAL.value, Status.REJECTED.value]),
                    messages.c.created_at >= since,
                )
            ).all()
    finally:
        engine.dispose()
    by_recipient: dict[str, set[str]] = {}
    for _pk, message_id, recipient in rows:
        by_recipient.setdefault(recipient, set()).add(message_id)
    return by_recipient, {int(r[0]) for r in rows}


def _delivered(ledger_url: str, pks: set[int]) -> int:
    engine = make_engine(ledger_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(messages.c.id).where(
                    messages.c.direction == Direction.OUTBOUND.value,
                    messages.c.authority == SENDER,
                    messages.c.status.in_([Status.DELIVERED.value, Status.ACKNOWLEDGED.value]),
                )
            ).all()
    finally:
        engine.dispose()
    return len({int(r[0]) for r in found} & pks)


def measure(
    records: int = 10_000, timeout_s: float = 3600, distinct_children: bool = False
) -> dict[str, Any]:
    """Run the whole path once on a vhost of its own; the figures as a dict."""
    with (
        rabbit_vhost("cafgw-bench-path") as url,
        tempfile.TemporaryDirectory(prefix="cafgw-bench-path-") as tmp,
    ):
        return _measure(Path(tmp), url, records, timeout_s, distinct_children)


def _measure(
    work: Path, url: str, records: int, timeout_s: float, distinct_children: bool
) -> dict[str, Any]:
    keys_dir = work / "keys"
    pull = {code: {"kind": "pull"} for code in (SENDER, *RECEIVING)}
    procs: dict[str, GatewayProcess] = {}
    ledgers: dict[str, str] = {}
    api_keys: dict[str, str] = {}
    for name, hosted in (("receiver", RECEIVING), ("sender", (SENDER,))):
        ledgers[name] = f"sqlite:///{work / name / 'ledger.db'}"
        folder = write_config(
            work / name / "config",
            hosted=hosted,
            amqp_url=url,
            ledger_url=ledgers[name],
            keys_dir=keys_dir,
            port=free_port(),
            gateway={"cpu_budget": True},
            connectors=pull,
        )
        settings = load_settings(folder, env={})
        for code in hosted:
            ensure_identity(code, settings.directory.get(code).name, keys_dir)
            api_keys[code] = _issue_key(ApiKeys(settings.api_keys_file), code)
        procs[name] = GatewayProcess(name, folder, settings.api.port, work / f"{name}.log")
    sender, receiver = procs["sender"], procs["receiver"]
    base = {name: f"http://127.0.0.1:{p.port}" for name, p in procs.items()}
    export = dudley_export(records, distinct_children)
    systems = [LocalSystem(base["receiver"], api_keys[c], c) for c in RECEIVING]
    systems.append(LocalSystem(base["sender"], api_keys[SENDER], SENDER))
    threads = [threading.Thread(target=s.run, daemon=True) for s in systems]
    try:
        receiver.start()
        sender.start()
        pids = {n: p.proc.pid if p.proc else None for n, p in procs.items()}
        before = {n: cpu.scrape_stages(p.port) for n, p in procs.items()}
        cpu_before = {n: cpu.proc_cpu_s(pid) for n, pid in pids.items()}
        for t in threads:
            t.start()
        since = datetime.now(UTC) - timedelta(seconds=1)  # margin for clock reads
        started = time.monotonic()
        with httpx.Client(timeout=timeout_s) as client:
            answer = client.post(
                f"{base['sender']}/v1/messages",
                params={"adapter": "dudley-csv", "source": "bench-export.csv"},
                headers={"Authorization": f"Bearer {api_keys[SENDER]}"},
                content=export,
            )
        accepted = time.monotonic()
        answer.raise_for_status()
        summary = answer.json()
        expected, pks = _expected(ledgers["sender"], since)
        by_authority = {s.authority: s for s in systems}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            handed_all = all(set(ids) <= set(by_authority[r].handed) for r, ids in expected.items())
            if handed_all and _delivered(ledgers["sender"], pks) == len(pks):
                break
            time.sleep(0.5)
        finished = time.monotonic()
        cpu_after = {n: cpu.proc_cpu_s(pid) for n, pid in pids.items()}
        after = {n: cpu.scrape_stages(p.port) for n, p in procs.items()}
        rss = {n: proc_rss_mb(pid) if pid else float("nan") for n, pid in pids.items()}
    finally:
        for s in systems:
            s.stop.set()
        for t in threads:
            t.join(30)
        for p in (sender, receiver):
            p.stop()
    handed = {r: len(ids & set(by_authority[r].handed)) for r, ids in expected.items()}
    repeats = sum(n - 1 for s in systems for n in s.handed.values() if n > 1)
    last_ack = max((s.last_ack for s in systems if s.last_ack), default=finished)
    delivered = _delivered(ledgers["sender"], pks)
    budget: dict[str, dict[str, float]] = {}
    for name in procs:
        b, a = before[name], after[name]
        row = {s: (a.get(s, 0.0) - b.get(s, 0.0)) * 1000 / max(1, records) for s in cpu.STAGES}
        if cpu_before[name] is not None and cpu_after[name] is not None:
            row["total"] = (cpu_after[name] - cpu_before[name]) * 1000 / max(1, records)
            row["other"] = row["total"] - sum(row[s] for s in cpu.STAGES)
        budget[name] = row
    return {
        "records": records,
        "queued": summary["queued"],
        "held": summary["held"],
        "rejected": summary["rejected"],
        "messages": len(pks),
        "messages_by_recipient": {r: len(ids) for r, ids in sorted(expected.items())},
        "handed_over": handed,
        "handed_over_twice": repeats,
        "delivered_at_sender": delivered,
        "accept_s": round(accepted - started, 2),
        "records_per_s_accepted": round(records / max(1e-9, accepted - started), 1),
        "last_handover_s": round(last_ack - started, 2),
        "all_delivered_s": round(finished - started, 2),
        "records_per_s_end_to_end": round(records / max(1e-9, last_ack - started), 1),
        "cpu_ms_per_record": budget,
        "peak_rss_mb": rss,
        "local_system_refusals": dict(sum((s.refused for s in systems), Counter[str]())),
        "local_system_errors": [e for s in systems for e in s.errors][:10],
        "complete": delivered == len(pks) and all(handed[r] == len(expected[r]) for r in expected),
    }


def main(argv: list[str]) -> int:
    distinct = "--distinct-children" in argv
    numbers = [a for a in argv if not a.startswith("--")]
    records = int(numbers[0]) if numbers else 10_000
    result = measure(records, distinct_children=distinct)
    result["distinct_children"] = distinct
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def table(result: dict[str, Any]) -> Table:
    """The whole path's figures and each gateway's CPU budget per record."""
    out = Table(title=f"user's whole path: {result['records']} Dudley records, API -> pull + ack")
    out.add_column("figure")
    out.add_column("value", justify="right")
    for key in (
        "records_per_s_accepted",
        "accept_s",
        "last_handover_s",
        "records_per_s_end_to_end",
        "all_delivered_s",
        "messages",
        "delivered_at_sender",
        "handed_over_twice",
        "complete",
    ):
        out.add_row(key, str(result[key]))
    out.add_row(
        "records queued / held / rejected",
        f"{result['queued']} / {result['held']} / {result['rejected']}",
    )
    for side, row in result["cpu_ms_per_record"].items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if v >= 0.005)
        out.add_row(f"CPU ms per record, {side}", shown)
    out.add_row("peak RSS MB", ", ".join(f"{k} {v:.0f}" for k, v in result["peak_rss_mb"].items()))
    return out
