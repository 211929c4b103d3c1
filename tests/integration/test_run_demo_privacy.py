"""`cafgw run --demo` as a new user runs it, in a project of its own: the terminal
gets no API key and no child's identifier, and everything under var/ is owner-only
(issue 13 item 7). The real thing: its own vhost, HTTP port and project folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.procs import CAFGW, ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# Values of the Dudley sample's rejected row 5 (its problems quote them).
PERSONAL = ("X332412014017", "99900000", "31/04/2014", "NOT A POSTCODE")


def test_the_demo_prints_where_to_look_but_no_key_and_no_identifier(
    tmp_path: Path, vhost: str
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "config", project / "config")
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAFGW_")}
    port = free_port()
    env.update({"CAFGW_BROKER__URL": vhost, "CAFGW_API__PORT": str(port), "COLUMNS": "200"})
    old_umask = os.umask(0o022)  # the usual umask: the gateway must not rely on a strict one
    try:
        proc = subprocess.Popen(
            [str(CAFGW), "run", "--demo", "--config", str(project / "config")],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    finally:
        os.umask(old_umask)
    output = b""
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + 180
        while b"Press Ctrl+C" not in output and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            output += proc.stdout.read() or b""
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    assert proc.stdout is not None
    output += proc.stdout.read() or b""
    text = output.decode("utf-8", errors="replace")
    assert "Press Ctrl+C" in text, text[-3000:]

    var = project / "var"
    creds = json.loads((var / "demo-credentials.json").read_text())
    for key in creds.values():
        assert key not in text, "an API key was printed"
    for value in PERSONAL:
        assert value not in text, f"{value!r} was printed"
    assert "demo-credentials.json (mode 0600" in text
    assert "problem(s) in UPN" in text  # the rejected row is still reported, by column

    loose = [
        str(p.relative_to(project))
        for p in [var, *var.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert loose == []
    assert (var / "ledger.db").exists() and (var / "keys" / "audit-chain.key").exists()
