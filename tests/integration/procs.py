"""Real gateway processes for fault tests: a config dir each, start, SIGKILL, restart.

Each process is ``cafgw run --config DIR`` with a config directory of its
own (gateway.yaml and authorities.yaml derived from the project's, pointed
at the test's vhost, ledger, keys and a free HTTP port). The test process
feeds the sender's outbox through the same ledger file (``feed``) and plays
the receiving local system (``PullSystem``), so both ends are counted
outside the gateways under test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from gateway.context import Gateway, build
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.keys import ensure_identity
from gateway.errors import CafgwError
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.model import Envelope
from gateway.settings import Settings, load_settings
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[2]
CAFGW = ROOT / ".venv" / "bin" / "cafgw"
EXAMPLE = ROOT / "schemas" / "examples" / "issue-log-entry.xml"
ALL = ("330", "332", "333", "334", "335", "336")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    folder: Path,
    *,
    hosted: tuple[str, ...],
    amqp_url: str,
    ledger_url: str,
    keys_dir: Path,
    port: int,
    gateway: dict[str, Any] | None = None,
    connectors: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A config dir like the project's, overridden for one test gateway; returns it.

    A section of ``gateway`` that is a mapping is merged into the one above
    (``{"database": {"outbox_lease_s": 12}}`` keeps the ledger URL); others replace.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text(encoding="utf-8"))
    data.update(
        {
            "hosted": list(hosted),
            "broker": {**data["broker"], "url": amqp_url},
            "database": {"url": ledger_url},
            "keys_dir": str(keys_dir),
            "api_keys_file": str(folder / "api-keys.json"),
            "adapters_dir": str(ROOT / "config" / "adapters"),
            "api": {"host": "127.0.0.1", "port": port},
        }
    )
    for key, value in (gateway or {}).items():
        above = data.get(key)
        data[key] = (
            {**above, **value} if isinstance(above, dict) and isinstance(value, dict) else value
        )
    (folder / "gateway.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    directory = yaml.safe_load((ROOT / "config" / "authorities.yaml").read_text(encoding="utf-8"))
    for code, connector in (connectors or {}).items():
        directory["authorities"][code]["connector"] = connector
    (folder / "authorities.yaml").write_text(yaml.safe_dump(directory), encoding="utf-8")
    for extra in ("policy.yaml",):
        if (ROOT / "config" / extra).exists():
            shutil.copy(ROOT / "config" / extra, folder / extra)
    return folder


@dataclass
class GatewayProcess:
    """One ``cafgw run`` process, startable again after a kill."""

    name: str
    config_dir: Path
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def settings(self) -> Settings:
        return load_settings(self.config_dir, env={})

    def start(self, ready_timeout_s: float = 60.0) -> None:
        """Start the process and wait until its HTTP API answers (topology declared by then)."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            env = {k: v for k, v in os.environ.items() if not k.startswith("CAFGW_")}
            # This tree's code, whatever the virtual environment's own install points
            # at (a git worktree sharing another checkout's .venv ran that checkout's).
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
            self.proc = subprocess.Popen(
                [str(CAFGW), "run", "--config", str(self.config_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise AssertionError(f"{self.name} exited with {code}: {self.tail()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=1
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {ready_timeout_s} s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]


@dataclass
class Pair:
    """A sending gateway (hosting ``sender``) and a receiving one (hosting ``recipient``)."""

    sender: GatewayProcess
    receiver: GatewayProcess
    sender_code: str
    recipient_code: str
    sender_ledger_url: str
    receiver_ledger_url: str


@contextmanager
def gateway_pair(
    tmp_path: Path,
    amqp_url: str,
    *,
    sender_code: str = "332",
    recipient_code: str = "336",
    gateway: dict[str, Any] | None = None,
    connectors: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Pair]:
    """Two real gateway processes on ``amqp_url``, receiver started first; stopped on exit."""
    keys = tmp_path / "keys"
    probe = load_settings(ROOT / "config", env={}, overrides={"keys_dir": str(keys)})
    for code in ALL:
        ensure_identity(code, probe.directory.get(code).name, probe.keys_dir)
    procs = []
    urls = []
    for name, code in (("receiver", recipient_code), ("sender", sender_code)):
        url = f"sqlite:///{tmp_path / name / 'ledger.db'}"
        port = free_port()
        folder = write_config(
            tmp_path / name / "config",
            hosted=(code,),
            amqp_url=amqp_url,
            ledger_url=url,
            keys_dir=keys,
            port=port,
            gateway=gateway,
            connectors=connectors,
        )
        procs.append(GatewayProcess(name, folder, port, tmp_path / f"{name}.log"))
        urls.append(url)
    receiver, sender = procs
    try:
        receiver.start()
        sender.start()
        yield Pair(sender, receiver, sender_code, recipient_code, urls[1], urls[0])
    finally:
        for p in (sender, receiver):
            p.stop()


def _template() -> Envelope:
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=100_000, max_depth=64)
    return element_to_envelope(root)


def feeder(settings: Settings) -> Gateway:
    """A gateway on the sender's ledger that only signs and records (it never publishes)."""
    return build(settings, MemoryTransport())


def signed_batch(
    gw: Gateway, sender: str, recipient: str, count: int, description: str | None = None
) -> list[NewMessage]:
    """``count`` distinct signed IssueLogEntry messages from ``sender`` to ``recipient``."""
    template = _template()
    # an issue-log entry is reported by the authority that sends it
    changes = {"reported_by_la": sender, **({"description": description} if description else {})}
    template = Envelope(template.header, replace(template.body, **changes))  # type: ignore[type-var]
    out = []
    for _ in range(count):
        header = replace(
            template.header,
            message_id=str(uuid.uuid4()),
            sender=sender,
            recipient=recipient,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        out.append(gw.outbox.sign(Envelope(header, template.body)))
    return out


def feed(gw: Gateway, messages: list[NewMessage], chunk: int = 200) -> None:
    """Put signed messages in the outbox, ``chunk`` per transaction (as the API does)."""
    for start in range(0, len(messages), chunk):
        with gw.ledger.transaction() as conn:
            gw.ledger.record(messages[start : start + chunk], conn)


def outbound_statuses(ledger: Ledger, sender: str) -> Counter[str]:
    counts = ledger.counts()
    return Counter(
        {s: n for (a, d, s), n in counts.items() if a == sender and d == Direction.OUTBOUND.value}
    )


@dataclass
class PullSystem:
    """The receiving local system on the pull connector: GET inbox, ack each, count."""

    ledger: Ledger
    authority: str
    handed: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def poll_once(self) -> int:
        items = self.ledger.inbox(self.authority, limit=500)
        for item in items:
            self.handed[item.message_id] += 1
            self.ledger.acknowledge_local(self.authority, item.message_id)
        return len(items)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.poll_once():
                    self.stop.wait(0.1)
            except CafgwError as exc:  # e.g. a locked ledger: try again
                self.errors.append(repr(exc))
                self.stop.wait(0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-system", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.ledger.engine.dispose()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass(frozen=True)
class Tally:
    """What the receiving local system saw, against what was sent."""

    sent: int
    lost: list[str]
    repeated: dict[str, int]


def tally(sent_ids: list[str], handed: Counter[str]) -> Tally:
    lost = [m for m in sent_ids if handed[m] == 0]
    repeated = {m: n for m, n in handed.items() if n > 1}
    return Tally(len(sent_ids), lost, repeated)


def inbound_rows(ledger: Ledger, authority: str) -> Counter[str]:
    """Inbound non-receipt, non-quarantined rows per message id in ``authority``'s ledger."""
    rows = ledger.find(
        authority=authority, direction=Direction.INBOUND, limit=1_000_000, with_history=False
    )
    return Counter(
        r.message_id for r in rows if r.message_type != "Receipt" and r.status != Status.QUARANTINED
    )
