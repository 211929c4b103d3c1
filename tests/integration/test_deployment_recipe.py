"""docs/deployment.md runs as written: two councils' gateways, each with its own
directory, SQLite ledger, signing key and port, and a record sent between them.

Every ``cafgw`` and ``curl`` line of the document's code blocks runs in
document order, in a working folder of the test's own holding Dudley's sample
export; a ``cafgw run`` line starts that gateway in the background, until it
prints its URL and answers /healthz. The only changes to the lines: the vhost
``caf`` in the broker URL becomes a vhost the test creates (and deletes), and
the ports 8332 and 8336 become free ones. The real RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from broker_admin import create_vhost, delete_vhost
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deployment.md"
CAFGW = ROOT / ".venv" / "bin" / "cafgw"
SHARED_SAMPLE = Path("/work/shared/samples/dudley-332/caf-register-2026-09.csv")
# The same file is in the repository, for a machine without /work/shared.
SAMPLE = (
    SHARED_SAMPLE
    if SHARED_SAMPLE.is_file()
    else ROOT / "tests/data/dudley-332" / SHARED_SAMPLE.name
)
# Documented non-zero exits: (start of the line, code).
EXPECTED_EXIT = {"cafgw send --config dudley": 1}  # the sample's row 5 is refused on purpose


def documented_lines() -> list[str]:
    """The ``cafgw`` and ``curl`` lines of the document's code blocks, in order."""
    lines, inside = [], False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and line.strip().startswith(("cafgw ", "curl ")):
            lines.append(line.strip())
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Walk:
    """The working folder, what the lines become here, and what they printed."""

    folder: Path
    replace: dict[str, str]
    printed: list[str] = field(default_factory=list)
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)
    starting: list[tuple[subprocess.Popen[bytes], int, Path]] = field(default_factory=list)

    def line(self, text: str) -> str:
        for documented, here in self.replace.items():
            text = text.replace(documented, here)
        return text

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("CAFGW_")}

    def cafgw(self, line: str) -> tuple[int, str]:
        """A ``cafgw`` line in this process (the console script's own app)."""
        here = Path.cwd()
        os.chdir(self.folder)
        try:
            cleared = {k: None for k in os.environ if k.startswith("CAFGW_")}
            result = CliRunner().invoke(
                app,
                shlex.split(line)[1:],
                env={**cleared, "COLUMNS": "200"},  # type: ignore[dict-item]
                catch_exceptions=False,
            )
        finally:
            os.chdir(here)
        said = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
        self.printed.append(said)
        return result.exit_code, said

    def shell(self, line: str) -> tuple[int, str]:
        done = subprocess.run(
            ["bash", "-c", line],
            check=False,
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.printed.append(done.stdout + done.stderr)
        return done.returncode, done.stdout

    def start(self, line: str) -> None:
        """Start a ``cafgw run`` line; ``ready`` waits for it (both gateways start at once)."""
        argv = shlex.split(line)
        config = self.folder / argv[argv.index("--config") + 1]
        port = load_settings(config, env={}).api.port
        log = self.folder / f"{config.name}.log"
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [str(CAFGW), *argv[1:]],
                cwd=self.folder,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.running.append(proc)
        self.starting.append((proc, port, log))

    def ready(self, timeout_s: float = 45) -> None:
        """Wait until every gateway started answers /healthz."""
        deadline = time.monotonic() + timeout_s
        for proc, port, log in self.starting:
            while True:
                assert proc.poll() is None, log.read_text(encoding="utf-8")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{log.stem}: no answer on port {port}"
                time.sleep(0.2)
        self.starting.clear()

    def stop(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.running:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    vhost = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(vhost)
    shutil.copy(SAMPLE, tmp_path / SAMPLE.name)
    found = Walk(
        tmp_path,
        {
            "127.0.0.1:5672/caf ": f"127.0.0.1:5672/{vhost} ",
            "8332": str(_free_port()),
            "8336": str(_free_port()),
        },
    )
    try:
        yield found
    finally:
        found.stop()
        delete_vhost(vhost)


def _sent_to_336(folder: Path) -> list[MessageRecord]:
    ledger = Ledger.open(f"sqlite:///{folder / 'dudley' / 'var' / 'ledger.db'}")
    try:
        return [
            r
            for r in ledger.find(authority="332", direction=Direction.OUTBOUND)
            if r.recipient == "336" and r.message_type == "Assessment"
        ]
    finally:
        ledger.engine.dispose()


def _wait_delivered(folder: Path, timeout_s: float = 30) -> MessageRecord:
    deadline = time.monotonic() + timeout_s
    while True:
        sent = _sent_to_336(folder)
        if sent and sent[0].status == Status.DELIVERED:
            return sent[0]
        assert time.monotonic() < deadline, f"not DELIVERED at Dudley: {sent}"
        time.sleep(0.2)


def test_the_two_council_walk_of_docs_deployment_runs_as_written(walk: Walk) -> None:
    lines = documented_lines()
    assert [line.split()[:2] for line in lines[:2]] == [["cafgw", "init"]] * 2
    assert any(line.startswith("cafgw peers add") for line in lines)
    assert sum(line.startswith("cafgw run") for line in lines) == 2
    inbox: list[dict[str, str]] = []
    for documented in lines:
        line = walk.line(documented)
        if line.startswith("cafgw run"):
            walk.start(line)
            continue
        walk.ready()
        if line.startswith(("cafgw messages", "curl ")):
            _wait_delivered(walk.folder)  # the receipt comes back within a second or two
        code, said = walk.shell(line) if line.startswith("curl ") else walk.cafgw(line)
        expected = next((c for start, c in EXPECTED_EXIT.items() if line.startswith(start)), 0)
        assert code == expected, f"{documented}\n{said}"
        assert "Traceback" not in said, f"{documented}\n{said}"
        if line.startswith("curl "):
            inbox = json.loads(said)

    assessment = _wait_delivered(walk.folder)
    assert assessment.sender == "332"
    # Wolverhampton's case system found it in its inbox, as Dudley sent it.
    assert assessment.message_id in {m["message_id"] for m in inbox}
    assert {m["sender"] for m in inbox} == {"332"}
    # Each gateway kept its own ledger and key; nothing secret was printed.
    for council, code in (("dudley", "332"), ("wolverhampton", "336")):
        folder = walk.folder / council
        assert (folder / "var" / "ledger.db").is_file()
        assert (folder / "secrets" / "keys" / code / "key.pem").is_file()
        secret = (folder / "secrets" / "local-system.key").read_text(encoding="ascii").strip()
        assert not any(secret in said for said in walk.printed), council
        assert (folder / "peers").is_dir()
    assert (walk.folder / "dudley" / "peers" / "336.pem").is_file()
    assert (walk.folder / "wolverhampton" / "peers" / "332.pem").is_file()
