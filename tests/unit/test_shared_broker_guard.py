"""Tests never stop, restart or reset the machine's shared RabbitMQ.

Six developers' test runs share that broker; a test that must take a broker
down uses a node of its own (tests/integration/private_broker.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.integration import rabbit_fixtures
from tests.integration.rabbit_fixtures import (
    DISRUPTIVE,
    SharedBrokerGuardError,
    rabbitmqctl,
    refuse_disruptive,
)

ROOT = Path(__file__).resolve().parents[2]
# The private node's own module runs these commands, on its own node only.
ALLOWED = {ROOT / "tests" / "integration" / "private_broker.py"}


@pytest.fixture
def harmless_rabbitmqctl(monkeypatch: pytest.MonkeyPatch) -> None:
    # Should the guard ever let a command through, /bin/echo runs instead of
    # rabbitmqctl: the test fails, and the shared broker is left alone.
    monkeypatch.setattr(rabbit_fixtures, "RABBITMQCTL", "/bin/echo")


@pytest.mark.parametrize(
    "args",
    [
        ("stop_app",),
        ("start_app",),
        ("stop",),
        ("reset",),
        ("force_reset",),
        ("-n", "rabbit@localhost", "stop_app"),
        ("--timeout", "60", "shutdown"),
        ("close_all_connections", "cafgw test"),
        ("close_all_user_connections", "guest", "cafgw test"),
    ],
)
@pytest.mark.usefixtures("harmless_rabbitmqctl")
def test_the_shared_broker_helper_refuses_commands_that_disrupt_every_developers_tests(
    args: tuple[str, ...],
) -> None:
    with pytest.raises(SharedBrokerGuardError, match="private_broker"):
        rabbitmqctl(*args)


@pytest.mark.usefixtures("harmless_rabbitmqctl")
def test_the_shared_broker_helper_still_runs_commands_scoped_to_a_vhost_or_read_only() -> None:
    assert rabbitmqctl("close_all_connections", "--vhost", "v1", "why").strip() == (
        "-q close_all_connections --vhost v1 why"
    )
    refuse_disruptive(("list_queues", "-p", "v1", "name", "messages_ready"))
    refuse_disruptive(("await_startup",))
    refuse_disruptive(("add_vhost", "cafgw-test-1"))


def _direct_disruptive_calls(source: str, where: str) -> list[str]:
    """Calls in ``source`` that run rabbitmqctl with a disruptive command literally."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if not isinstance(node, ast.Call):
            continue
        strings = [
            n.value
            for arg in node.args
            for n in ast.walk(arg)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        name = ast.unparse(node.func)
        runs_ctl = name.endswith("rabbitmqctl") or any("rabbitmqctl" in s for s in strings)
        if runs_ctl and DISRUPTIVE & set(strings):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_no_test_or_bench_runs_a_disruptive_rabbitmqctl_command_outside_the_private_node() -> None:
    sources = [
        p
        for folder in ("tests", "bench")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p not in ALLOWED and ".venv" not in p.parts
    ]
    assert len(sources) > 50  # the scan sees the suite
    offenders = [
        hit
        for p in sources
        for hit in _direct_disruptive_calls(p.read_text(), str(p.relative_to(ROOT)))
    ]
    assert offenders == [], "use the private_broker fixture:\n" + "\n".join(offenders)


def test_the_scan_finds_direct_calls_that_stop_or_start_the_shared_broker() -> None:
    sample = (
        "import subprocess\n"
        'subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)\n'
        'rabbitmqctl("start_app", timeout_s=120)\n'
        'private_broker.ctl("stop_app")\n'
    )
    assert [hit.split(":")[1] for hit in _direct_disruptive_calls(sample, "sample.py")] == [
        "2",
        "3",
    ]
