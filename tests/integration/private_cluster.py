"""A three-node RabbitMQ cluster of a test's own, for tests that kill nodes.

Each node is a ``PrivateBroker`` (own node name, AMQP and distribution
ports, data and log directories, no plugins) and all share one Erlang
cookie of their own, so they can cluster with each other and with nothing
else: not with the machine's broker (``rabbit@<host>`` on 5672), whose
cookie they do not have. The nodes boot together, then each after the first
joins it the way RabbitMQ's documentation does it:
``rabbitmqctl -n NODE stop_app``, ``join_cluster FIRST``, ``start_app``.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from tests.integration.private_broker import PrivateBroker, PrivateBrokerError


class PrivateCluster:
    """Three (``size``) clustered private nodes under ``base``; ``start()``, ``close()``."""

    def __init__(self, base: Path, size: int = 3) -> None:
        tag = uuid.uuid4().hex[:6]
        cookie = secrets.token_hex(20).upper()
        self.nodes = [
            PrivateBroker(base / f"c{i}", name=f"cafgw-c{i}-{tag}", cookie=cookie)
            for i in range(1, size + 1)
        ]
        self.down: set[str] = set()

    def start(self) -> None:
        """Boot every node at once, then join the others to the first."""
        for node in self.nodes:
            node.launch()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: (n.wait_for_amqp(), n.await_startup()), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        running = json.loads(first.ctl("cluster_status", "--formatter", "json"))["running_nodes"]
        if sorted(running) != sorted(n.node for n in self.nodes):
            raise PrivateBrokerError(f"cluster formed with {running} only")

    def live(self) -> PrivateBroker:
        """A node that runs (to ask rabbitmqctl about the cluster)."""
        for node in self.nodes:
            if node.node not in self.down:
                return node
        raise PrivateBrokerError("no node of the private cluster runs")

    def named(self, node_name: str) -> PrivateBroker:
        return next(n for n in self.nodes if n.node == node_name)

    def add_vhost(self) -> str:
        """A new vhost (cluster-wide) that guest may use fully; returns its name."""
        return self.live().add_vhost().rsplit("/", 1)[-1]

    def urls(self, vhost: str) -> list[str]:
        """guest's amqp URL on ``vhost`` at every node, in the nodes' order."""
        return [
            f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/{quote(vhost, safe='')}"
            for n in self.nodes
        ]

    def leader(self, vhost: str, queue: str, wait_s: float = 30.0) -> str:
        """The node that leads quorum queue ``queue`` now.

        Just after its leader was killed, a queue is missing from ``list_queues`` on
        the live nodes until they have elected another (seen in a fresh-clone run):
        asked again for up to ``wait_s``, then an error naming what was listed."""
        deadline = time.monotonic() + wait_s
        while True:
            listed = json.loads(
                self.live().ctl("list_queues", "-p", vhost, "name", "leader", "--formatter", "json")
            )
            for row in listed:
                if row["name"] == queue and row.get("leader"):
                    return str(row["leader"])
            if time.monotonic() >= deadline:
                raise PrivateBrokerError(f"no queue {queue!r} in vhost {vhost!r}: {listed}")
            time.sleep(0.5)

    def connection_nodes(self, vhost: str) -> list[str]:
        """The node of each client connection to ``vhost`` (by the AMQP port it reached)."""
        by_port = {n.amqp_port: n.node for n in self.nodes}
        listed = json.loads(
            self.live().ctl("list_connections", "port", "vhost", "--formatter", "json")
        )
        return [by_port[row["port"]] for row in listed if row["vhost"] == vhost]

    def kill(self, node: PrivateBroker) -> None:
        """SIGKILL one node, as a crash of its machine would end it."""
        self.down.add(node.node)
        node.kill()

    def restart(self, node: PrivateBroker) -> None:
        """Boot a killed node again; it rejoins the cluster with the data it had."""
        node.start()
        self.down.discard(node.node)

    def close(self) -> None:
        """Stop every node and delete its data, whatever fails on the way."""
        errors: list[BaseException] = []
        for node in self.nodes:
            try:
                node.close()
            except (OSError, PrivateBrokerError) as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
