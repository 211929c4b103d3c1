"""Every cafgw command shown in README.md and docs/*.md runs as shown.

In a temporary project (the repository's config, sample data and examples
copied in), against a vhost and an SQLite ledger of its own and a free port:
`cafgw run --demo` is started first (in the background, until it prints its
URL and answers /healthz), then every other documented command runs as a
subprocess, in document order, with placeholders filled from the state the
demo made. A command errors when it exits other than 0 (or the documented
non-zero code), or prints a traceback. How commands are read from the
documents: tests/integration/documented_commands.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from broker_admin import create_vhost, delete_users_of, delete_vhost
from lxml import etree
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from tests.integration.documented_commands import Shown, fill, runnable, shown_commands

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CAFGW = ROOT / ".venv" / "bin" / "cafgw"
SAMPLE = "tests/data/dudley-332/caf-register-2026-09.csv"
UPN = "J332412014017"  # the child of the sample's row 2, sent to 336 and 333
# Documented non-zero exits: (start of the command line, code, why).
EXPECTED_EXIT = [
    ("cafgw convert --adapter dudley-csv", 1, "the sample's row 5 is rejected, on purpose"),
    ("cafgw send --authority 332 --adapter dudley-csv", 1, "the same rejected row"),
    ("cafgw convert docs/examples/coventry-331", 1, "the example's row 4 is rejected"),
    ("cafgw convert EXPORT", 1, "the Coventry example export, row 4 rejected"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    env_overrides: dict[str, str]
    port: int
    ran: list[str] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return Ledger.open(f"sqlite:///{self.root / 'var' / 'ledger.db'}")

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """``cafgw ...`` in this process (the console script's own app; one import, not 60)."""
        started = time.monotonic()
        here = Path.cwd()
        os.chdir(self.root)
        try:
            result = CliRunner().invoke(
                app, argv[1:], env=self.env_overrides, catch_exceptions=True
            )
        finally:
            os.chdir(here)
            self.ran.append(f"{time.monotonic() - started:5.1f}s {' '.join(argv)}")
        said = result.stderr if result.stderr_bytes is not None else ""
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            said += "\nTraceback: " + "".join(traceback.format_exception(result.exception))
        return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, said)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "config", root / "config")
    shutil.copytree(ROOT / "docs" / "examples", root / "docs" / "examples")
    shutil.copytree(ROOT / "tests" / "data", root / "tests" / "data")
    vhost = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(vhost)
    port = _free_port()
    overrides = {
        "CAFGW_BROKER__URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "CAFGW_API__PORT": str(port),
        "COLUMNS": "160",
        "PYTHONUNBUFFERED": "1",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAFGW_")} | overrides
    # Other CAFGW_* in the test's own environment must not reach the commands.
    cleared = {k: None for k in os.environ if k.startswith("CAFGW_")}
    try:
        yield Project(root, env, {**cleared, **overrides}, port)  # type: ignore[dict-item]
    finally:
        delete_vhost(vhost)
        # Documented commands such as `cafgw broker setup` make users named for the vhost.
        delete_users_of(vhost)


class Background:
    """A long-running documented command (`cafgw run`), stopped with Ctrl+C (SIGINT)."""

    def __init__(self, project: Project, argv: list[str]) -> None:
        self.log = project.root / f"run-{len(project.ran)}.log"
        self.process = subprocess.Popen(
            [str(CAFGW), *argv[1:]],
            cwd=project.root,
            env=project.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{project.port}/"

    def wait_ready(self, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            out = self.output()
            if f"API and dashboard on {self.url}" in out:
                try:
                    if httpx.get(self.url + "healthz", timeout=2).status_code == 200:
                        return self.output()
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        raise AssertionError("cafgw run did not print its URL and answer:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.output()


DEAD_LETTER_BODY = b"<Envelope/>"


def _record_dead_letter(ledger: Ledger, authority: str) -> str:
    """A dead letter of ``authority`` to replay (sent to Solihull; nobody answered)."""
    message_id = str(uuid.uuid4())
    (pk,) = ledger.record(
        [
            NewMessage(
                message_id=message_id,
                direction=Direction.OUTBOUND,
                authority=authority,
                sender=authority,
                recipient="334",
                message_type="IssueLogEntry",
                correlation_id=str(uuid.uuid4()),
                legal_basis="NO_PERSONAL_DATA",
                statuses=((Status.SIGNED, None), (Status.SENT, None)),
                body=DEAD_LETTER_BODY,
                digest=hashlib.sha256(DEAD_LETTER_BODY).hexdigest(),
            )
        ]
    )
    ledger.transition([pk], Status.DEAD_LETTERED, "no receipt from 334 after 6 sends")
    return message_id


class Values:
    """Fills the documents' placeholders from what the project holds now."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.fixed = {
            "REF": UPN,
            "FILE.xml": "out/DUD-2026-00417.xml",
            "SIGNED.xml": "signed.xml",
            "BODY.xml": "body.xml",
            "DIR": "out",
            "EXPORT": "docs/examples/coventry-331/caf-cases-2026-10.csv",
            "<name>": "coventry-csv",
            "WHY": "left the team",
            "CODE": "332",
        }

    def _sent(self, authority: str, recipient: str, kind: str = "Assessment") -> str:
        for r in self.project.ledger.find(authority=authority, direction=Direction.OUTBOUND):
            if r.recipient == recipient and r.message_type == kind:
                return r.message_id
        raise AssertionError(f"no {kind} from {authority} to {recipient} in the ledger")

    def for_line(self, line: str) -> dict[str, str]:
        words = line.split()
        values = dict(self.fixed)
        command = " ".join(words[1:3])
        if "FILE" in words:
            values["FILE"] = {
                "cafgw convert": SAMPLE,
                "cafgw send": SAMPLE,
                "cafgw adapters": "config/adapters/dudley-csv.yaml",
            }.get(" ".join(words[:2]), "report.json")
        ledger = self.project.ledger
        if command.startswith("dead-letters replay"):
            found = re.search(r"--authority (\d{3})", line)
            code = found.group(1) if found else "333"
            values["MESSAGE_ID"] = values["ID"] = _record_dead_letter(ledger, code)
            values["SHA256"] = hashlib.sha256(DEAD_LETTER_BODY).hexdigest()
        elif command.startswith(("recall ", "recalls")):
            values["MESSAGE_ID"] = values["ID"] = self._sent("332", "333")
        elif command.startswith("correct"):
            values["MESSAGE_ID"] = values["ID"] = self._sent("332", "336")
        elif command.startswith("not-ours"):
            received = [
                r
                for r in ledger.find(authority="333", direction=Direction.INBOUND)
                if r.message_type == "Notification"
            ]
            values["MESSAGE_ID"] = received[0].message_id
        elif command.startswith("cases show"):
            values["ID"] = "DUD-2026-00417"
        else:
            values["MESSAGE_ID"] = values["ID"] = self._sent("332", "336")
        if "KEY_ID" in words:
            listed = json.loads(self.project.run(["cafgw", "api-keys", "list", "--json"]).stdout)
            values["KEY_ID"] = next(k["key_id"] for k in listed if k["holder"] == "Jo Bloggs")
        if "DISPUTE_ID" in words:
            listed = self.project.run(["cafgw", "disputes", "list", "--authority", "332", "--json"])
            values["DISPUTE_ID"] = json.loads(listed.stdout)[0]["dispute_id"]
        if "SEQ:HASH" in line:
            values["SEQ:HASH"] = self.project.run(["cafgw", "audit", "head"]).stdout.strip()
        ledger.engine.dispose()
        return values


def _expected(line: str) -> int:
    return next((code for start, code, _ in EXPECTED_EXIT if line.startswith(start)), 0)


def _prepare(project: Project) -> None:
    """What the documents assume done before: the Coventry mapping installed, a corrected body."""
    shutil.copy(
        project.root / "docs/examples/coventry-331/coventry-csv.yaml",
        project.root / "config/adapters/coventry-csv.yaml",
    )
    converted = project.run(["cafgw", "convert", "--adapter", "dudley-csv", SAMPLE, "--out", "out"])
    assert converted.returncode == 1, converted.stderr
    envelope = etree.parse(str(project.root / "out/DUD-2026-00417.xml")).getroot()
    body = next(iter(envelope.iterchildren("{urn:caf-exchange:1}Assessment")))
    (project.root / "body.xml").write_bytes(
        etree.tostring(body, xml_declaration=True, encoding="UTF-8")
    )


def test_every_documented_command_runs_as_shown(project: Project) -> None:
    shown = shown_commands()
    plan: list[tuple[Shown, str]] = []
    skipped: list[str] = []
    for s in shown:
        lines = runnable(s, s.fenced)
        if isinstance(lines, str):
            skipped.append(f"{s.where}: {s.text} (not run: {lines})")
            continue
        plan.extend((s, line) for line in lines)
    # Erasing the sample child runs last: the commands before it look that child up.
    plan.sort(key=lambda p: p[1].startswith("cafgw children erase") and "--dry-run" not in p[1])
    assert any(line.startswith("cafgw run --demo") for _, line in plan)

    # The keys first, as the README's first line does on a fresh project.
    keys_init = next(line for _, line in plan if line.startswith("cafgw keys init"))
    for code in ("330", "332", "333", "334", "335", "336"):
        made = project.run(fill(keys_init.replace("332", code), {}))
        assert made.returncode == 0, made.stdout + made.stderr
    done = {keys_init}

    demo = Background(project, ["cafgw", "run", "--demo"])
    failures: list[str] = []
    try:
        printed = demo.wait_ready()
        assert "Where to look" in printed and "CAFGW_API__PORT" in printed
        done.add("cafgw run --demo")
        _prepare(project)
        time.sleep(3)  # receipts for the demo's sends
        values = Values(project)
        for s, line in plan:
            if line in done or line.startswith("cafgw run"):
                continue
            done.add(line)
            argv = fill(line, values.for_line(line))
            result = project.run(argv)
            expected = _expected(line)
            said = result.stdout + result.stderr
            if result.returncode != expected or "Traceback" in said:
                failures.append(
                    f"{s.where}: {' '.join(argv)}\n  exit {result.returncode} (expected "
                    f"{expected})\n  " + said.strip().replace("\n", "\n  ")[-1500:]
                )
    finally:
        demo.stop()
    # `cafgw run` without the demo, on the project the demo left.
    plain = Background(project, ["cafgw", "run"])
    try:
        plain.wait_ready(60)
    finally:
        plain.stop()
    print("\n".join(project.ran))
    assert failures == [], "\n\n".join(failures)
    assert len(done) > 40, sorted(done)
    print("\n".join(skipped))
