"""A three-node RabbitMQ cluster loses, mid-stream, the node the gateways are connected to
and then the quorum leader of the recipient's inbox: nothing lost, nothing handed over twice.

The cluster is the test's own (``private_cluster``: own node names, ports,
data directories and Erlang cookie), never the machine's broker. Two gateways
(worker threads in this process) list all three nodes in ``broker.urls``, with
every queue a quorum queue of three replicas. Messages stream from Dudley
(332) to Wolverhampton (336) for as long as the faults last; 336's local
system pulls and acknowledges them and counts each id it is handed. The time
to recover is from a kill until the local system has been handed more
messages than one batch the consumer could have been holding at the kill,
so it counts only deliveries through the surviving nodes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.context import Gateway
from gateway.ledger.status import Status
from gateway.ledger.store import Ledger
from tests.integration.gateways import make_settings, running
from tests.integration.private_broker import PrivateBroker
from tests.integration.private_cluster import PrivateCluster
from tests.integration.procs import (
    PullSystem,
    feed,
    feeder,
    inbound_rows,
    outbound_statuses,
    signed_batch,
    tally,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(300)]

SENDER, RECIPIENT = "332", "336"
PREFETCH = 200
BATCH = PREFETCH // 2  # the consumer's batch_max: what it may hold when its node dies


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """Three clustered RabbitMQ nodes of this test's own, stopped and deleted afterwards."""
    found = PrivateCluster(tmp_path_factory.mktemp("cluster"))
    try:
        found.start()
        yield found
    finally:
        found.close()


class Stream:
    """Signs and records messages into the sender's outbox, a chunk at a time, until
    stopped; never more than ``backlog`` ahead of what the local system was handed."""

    def __init__(
        self, signer: Gateway, local: PullSystem, chunk: int = 50, backlog: int = 400
    ) -> None:
        self.signer = signer
        self.local = local
        self.chunk = chunk
        self.backlog = backlog
        self.ids: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            if len(self.ids) - len(self.local.handed) >= self.backlog:
                self.stop.wait(0.05)
                continue
            batch = signed_batch(self.signer, SENDER, RECIPIENT, self.chunk)
            feed(self.signer, batch, self.chunk)
            self.ids += [m.message_id for m in batch]

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def _kill_and_time(cluster: PrivateCluster, node: PrivateBroker, local: PullSystem) -> float:
    """Kill ``node``; seconds until the local system got more than a batch beyond the kill."""
    before = len(local.handed)
    print(f"{time.monotonic():.1f} killing {node.node}, {before} handed over", flush=True)
    killed_at = time.monotonic()
    cluster.kill(node)
    wait_until(
        lambda: len(local.handed) > before + BATCH, 60, f"deliveries again after killing {node}"
    )
    return time.monotonic() - killed_at


def test_killing_the_connected_node_then_the_inbox_leader_loses_and_repeats_nothing(
    tmp_path: Path, cluster: PrivateCluster
) -> None:
    vhost = cluster.add_vhost()
    urls = cluster.urls(vhost)
    broker = {"urls": urls, "prefetch": PREFETCH, "replication_factor": 3}
    sender_url = f"sqlite:///{tmp_path / 'sender.db'}"
    receiver_url = f"sqlite:///{tmp_path / 'receiver.db'}"
    sender = make_settings(tmp_path, (SENDER,), sender_url, urls[0], broker=broker)
    receiver = make_settings(tmp_path, (RECIPIENT,), receiver_url, urls[0], broker=broker)
    inbox = f"caf.inbox.{RECIPIENT}"
    signer = feeder(sender)
    local = PullSystem(Ledger.open(receiver_url), RECIPIENT)
    with running(receiver), running(sender), Stream(signer, local) as stream:
        local.start()
        try:
            wait_until(lambda: len(local.handed) >= 300, 60, "the stream flowing")
            # Every connection starts at the first node listed.
            connected = set(cluster.connection_nodes(vhost))
            assert connected == {cluster.nodes[0].node}
            node_s = _kill_and_time(cluster, cluster.nodes[0], local)
            assert cluster.nodes[0].node not in set(cluster.connection_nodes(vhost))
            # Back to three nodes, so that the next loss leaves a majority.
            cluster.restart(cluster.nodes[0])
            leader = cluster.leader(vhost, inbox)
            leader_s = _kill_and_time(cluster, cluster.named(leader), local)
            assert cluster.leader(vhost, inbox) != leader
        finally:
            stream.stop.set()
        stream.thread.join(60)
        ids = list(stream.ids)
        try:
            try:
                wait_until(
                    lambda: len(set(ids) & set(local.handed)) >= len(ids),
                    90,
                    f"all {len(ids)} messages handed to the local system",
                )
            except AssertionError as exc:
                queues = cluster.live().ctl(
                    "list_queues", "-p", vhost, "name", "type", "messages_ready",
                    "messages_unacknowledged", "consumers", "leader",
                )  # fmt: skip
                consumers = cluster.live().ctl("list_consumers", "-p", vhost)
                statuses = outbound_statuses(signer.ledger, SENDER)
                raise AssertionError(
                    f"{exc}: {len(set(ids) & set(local.handed))} handed; sender: {statuses}; "
                    f"queues:\n{queues}\nconsumers:\n{consumers}"
                ) from exc
            wait_until(
                lambda: outbound_statuses(signer.ledger, SENDER)[Status.DELIVERED.value]
                >= len(ids),
                90,
                "a receipt for every message",
            )
            time.sleep(1.0)  # a late duplicate would surface now
            local.poll_once()
        finally:
            local.close()
            signer.ledger.engine.dispose()
    outcome = tally(ids, local.handed)
    rows = inbound_rows(Ledger.open(receiver_url), RECIPIENT)
    print(
        f"\n{len(ids)} messages through a 3-node cluster; time to recover: "
        f"{node_s:.1f} s after killing the node the gateways were connected to, "
        f"{leader_s:.1f} s after killing the quorum leader of {inbox} ({leader})"
    )
    assert outcome.lost == [], f"{len(outcome.lost)} of {len(ids)} lost"
    assert outcome.repeated == {}, "handed to the local system twice"
    assert {m: n for m, n in rows.items() if n > 1} == {}
