"""Isolated RabbitMQ vhosts for integration tests.

Each test gets a vhost of its own (``rabbitmqctl add_vhost`` plus
permissions for guest), so tests cannot see each other's queues; the
vhost is deleted afterwards, queues and messages with it. Import the
fixtures (``rabbit_vhost``, ``rabbit_url``) from a conftest or a test module.

``rabbitmqctl`` here talks to the machine's shared node, which every
developer's tests use at once: it refuses commands that stop, restart,
reset or cluster it, or cut connections beyond a vhost. Tests that need
that get a node of their own: the ``private_broker`` fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from broker_admin import create_vhost, delete_vhost

AMQP_HOST = "127.0.0.1:5672"
RABBITMQCTL = shutil.which("rabbitmqctl")


@dataclass(frozen=True)
class Vhost:
    name: str
    url: str  # amqp URL for guest on this vhost


# Commands that take the shared node (or everyone's connections or publishers) down.
DISRUPTIVE = frozenset(
    {
        "stop",
        "shutdown",
        "stop_app",
        "start_app",
        "reset",
        "force_reset",
        "force_boot",
        "join_cluster",
        "forget_cluster_node",
        "change_cluster_node_type",
        "update_cluster_nodes",
        "rename_cluster_node",
        "set_vm_memory_high_watermark",
        "set_disk_free_limit",
        "close_all_user_connections",
        "eval",
    }
)
_OPTIONS_WITH_VALUE = frozenset({"-n", "--node", "-t", "--timeout"})


class SharedBrokerGuardError(RuntimeError):
    """A test tried to disrupt the machine's shared RabbitMQ."""


def refuse_disruptive(args: tuple[str, ...]) -> None:
    """Raise unless ``rabbitmqctl *args`` leaves the shared node and others' connections alone."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in _OPTIONS_WITH_VALUE else rest[1:]
    command = rest[0] if rest else ""
    scoped = command == "close_all_connections" and ("--vhost" in rest or "-p" in rest)
    if command in DISRUPTIVE or (command == "close_all_connections" and not scoped):
        raise SharedBrokerGuardError(
            f"rabbitmqctl {' '.join(args)}: refused on the machine's shared RabbitMQ, "
            "which every developer's tests use. A test that stops, restarts or resets a "
            "broker uses a node of its own: the private_broker fixture "
            "(tests/integration/private_broker.py); connections are closed per vhost."
        )


def rabbitmqctl(*args: str, timeout_s: float = 60) -> str:
    """Run ``rabbitmqctl -q`` on the shared node; raise with its stderr when it fails."""
    refuse_disruptive(args)
    if RABBITMQCTL is None:
        pytest.skip("rabbitmqctl not found; integration tests need a local RabbitMQ")
    done = subprocess.run(
        [RABBITMQCTL, "-q", *args], check=False, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def temporary_vhost(prefix: str = "cafgw-test") -> Iterator[Vhost]:
    """A fresh vhost that guest may use fully; deleted on exit."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    try:
        yield Vhost(name, f"amqp://guest:guest@{AMQP_HOST}/{quote(name, safe='')}")
    finally:
        delete_vhost(name)


def close_connections(vhost: str, why: str = "cafgw test: simulated connection loss") -> None:
    """Have the broker close every connection of ``vhost`` (and only of it)."""
    rabbitmqctl("close_all_connections", "--vhost", vhost, why)


def queue_depths(vhost: str) -> dict[str, int]:
    """Messages ready in each queue of ``vhost``, as the broker reports them."""
    out = rabbitmqctl("list_queues", "-p", vhost, "name", "messages_ready", "--no-table-headers")
    depths = {}
    for line in out.splitlines():
        name, _, ready = line.rpartition("\t")
        if name:
            depths[name] = int(ready)
    return depths


@pytest.fixture
def rabbit_vhost() -> Iterator[Vhost]:
    """A vhost of this test's own, with its name (for rabbitmqctl) and URL."""
    with temporary_vhost() as vhost:
        yield vhost


@pytest.fixture
def rabbit_url(rabbit_vhost: Vhost) -> str:
    """The amqp URL of a vhost of this test's own."""
    return rabbit_vhost.url
