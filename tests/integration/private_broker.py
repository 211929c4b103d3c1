"""A RabbitMQ node of a test's own, for tests that stop, restart or break the broker.

The machine's broker (127.0.0.1:5672) is shared by every developer's tests,
so a test that must take a broker down starts this one instead:
``rabbitmq-server`` as a child process with its own node name, AMQP and
distribution ports, data, log and config files, plugins (none), and its own
Erlang cookie in a private ``HOME``. ``rabbitmqctl`` is run with that same
environment and ``-n <node>``; with a different cookie it could not reach the
shared node even by mistake.

Two details of the Debian package shape this module:

- ``/usr/sbin/rabbitmq-server`` and ``rabbitmqctl`` are wrappers that, for
  root, ``su`` to the ``rabbitmq`` user (HOME ``/var/lib/rabbitmq``, the
  shared node's cookie) and send the server's output to /var/log. The scripts
  they wrap, in ``/usr/lib/rabbitmq/bin``, are run here directly.
- Every ``rabbitmqctl`` on the machine listens on a distribution port in
  35672-35682 unless told otherwise, and ports from 32768 up are handed
  out to outgoing connections. The node's ports are therefore picked below
  both, and its ``rabbitmqctl`` gets a range of its own.

The node registers its name with the machine's epmd (port 4369), as every
Erlang node does; nothing else of the shared broker is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
CTL_PORTS = 11  # rabbitmqctl's own distribution port range: first..first+10
LOWEST_PORT = 20000
BOOT_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class PrivateBrokerError(RuntimeError):
    """The private node did not start, answer or stop; the message carries its log tail."""


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return min(int(text.split()[0]), 32768)
    except (OSError, ValueError, IndexError):
        return 32768


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, attempts: int = 200) -> list[int]:
    """``count`` consecutive free ports below the ephemeral range, at a random place.

    Random, so two developers' private nodes rarely try the same ones; below
    the ephemeral range, so no outgoing connection can be holding one.
    """
    ceiling = _ephemeral_floor() - count
    for _ in range(attempts):
        first = random.randrange(LOWEST_PORT, ceiling)
        ports = list(range(first, first + count))
        if all(_free(p) for p in ports):
            return ports
    raise PrivateBrokerError(f"no {count} consecutive free ports in {LOWEST_PORT}-{ceiling}")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"({path} unreadable)"


class PrivateBroker:
    """A throw-away RabbitMQ node under ``base``; ``start()`` it, ``close()`` it."""

    def __init__(self, base: Path, *, name: str | None = None, cookie: str | None = None) -> None:
        """``name``: the node's name before ``@localhost``; ``cookie``: its Erlang cookie
        (nodes of one private cluster share one; by default a new one of its own)."""
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise PrivateBrokerError(f"rabbitmq-server not found in {RABBITMQ_BIN}")
        self.base = base
        self.node = f"{name or 'cafgw-test-' + uuid.uuid4().hex[:12]}@localhost"
        self.amqp_port, dist_port, *ctl = pick_ports(2 + CTL_PORTS)
        self._server_out = base / "server.out"
        self._log = base / "log" / f"{self.node}.log"
        self._process: subprocess.Popen[bytes] | None = None
        home = base / "home"
        for d in (home, base / "mnesia", base / "log"):
            d.mkdir(parents=True, exist_ok=True)
        cookie_file = home / ".erlang.cookie"
        cookie_file.write_text(cookie or secrets.token_hex(20).upper())
        cookie_file.chmod(0o400)
        # guest may log in from loopback only (the default, stated so it stays so).
        (base / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: it names the shared node
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl[0]),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl[-1]),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",  # only used if no epmd runs yet
        }

    def url(self, vhost: str = "/") -> str:
        """The amqp URL of guest on ``vhost`` of this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def start(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Boot the node and return once it accepts AMQP and ``rabbitmqctl`` reaches it."""
        self.launch()
        self.wait_for_amqp(timeout_s)
        self.await_startup()

    def launch(self) -> None:
        """Start booting the node (again, after ``kill``, with the data it had); do not wait."""
        command = [str(RABBITMQ_BIN / "rabbitmq-server")]
        if shutil.which("setpriv"):
            # If pytest itself is killed, the server script gets SIGTERM and stops the node.
            command = ["setpriv", "--pdeathsig", "TERM", *command]
        with self._server_out.open("wb") as out:
            self._process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so close() can end all of it
            )

    def wait_for_amqp(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Wait until guest can open an AMQP connection; fail early if the node died."""
        deadline = time.monotonic() + timeout_s
        params = pika.URLParameters(self.url() + "?connection_attempts=1&socket_timeout=5")
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise PrivateBrokerError(
                    f"{self.node} exited ({self._process.returncode}) while booting:\n"
                    f"{_tail(self._server_out)}"
                )
            # A bare TCP probe until the listener is up (pika would log each refusal);
            # safe below the ephemeral range, where a probe cannot connect to itself.
            if _accepts(self.amqp_port):
                try:
                    pika.BlockingConnection(params).close()
                    return
                except pika.exceptions.AMQPError:
                    pass  # listening, but not taking logins yet
            if time.monotonic() > deadline:
                raise PrivateBrokerError(
                    f"{self.node} accepted no AMQP connection on port {self.amqp_port} "
                    f"within {timeout_s:.0f} s:\n{_tail(self._log)}"
                )
            time.sleep(0.25)

    def ctl(self, *args: str, timeout_s: float = 120) -> str:
        """Run ``rabbitmqctl -n <this node>``; raise with its stderr when it fails."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            cwd=self.base,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise PrivateBrokerError(
                f"rabbitmqctl -n {self.node} {' '.join(args)} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[:2000]}"
            )
        return done.stdout

    def await_startup(self) -> None:
        """Return once the RabbitMQ application runs on the node."""
        self.ctl("await_startup", "--timeout", "120", timeout_s=150)

    def stop_app(self) -> None:
        """Stop RabbitMQ on the node (the Erlang VM stays up): clients lose it."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start RabbitMQ again after ``stop_app``."""
        self.ctl("start_app")

    def restart(self, down_s: float = 0.0) -> None:
        """``stop_app``, stay down ``down_s`` seconds, ``start_app`` (which returns once up)."""
        self.stop_app()
        time.sleep(down_s)
        self.start_app()

    def add_vhost(self, prefix: str = "cafgw-test") -> str:
        """A new vhost on the node that guest may use fully; returns its amqp URL."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        # One rabbitmqctl call (each boots an Erlang VM) for the vhost and guest's rights.
        definitions = self.base / f"{name}.json"
        definitions.write_text(
            json.dumps(
                {
                    "vhosts": [{"name": name}],
                    "permissions": [
                        {
                            "user": "guest",
                            "vhost": name,
                            "configure": ".*",
                            "write": ".*",
                            "read": ".*",
                        }
                    ],
                }
            )
        )
        self.ctl("import_definitions", str(definitions))
        return self.url(name)

    def kill(self) -> None:
        """SIGKILL the node and every process of its group, as a crash would; its data stays."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the node (SIGTERM: a clean shutdown), kill what is left, delete its data."""
        process, self._process = self._process, None
        try:
            if process is not None:
                _stop_group(process)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """End the server script and every process of its group (beam.smp and its helpers)."""
    pgid = process.pid  # start_new_session: the script leads its own group
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the script's trap stops the node cleanly
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        process.wait(10)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of group ``pgid`` remains."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            return True
    return False
