"""A receiving local system on the pull connector, over the gateway's HTTP API.

It reads ``GET /v1/inbox`` and acknowledges what it read with
``POST /v1/inbox/ack``, taking the replicas in turn (any replica serves any
message of the shared ledger) and moving on to the next when one does not
answer (killed). It counts, per message id, how often it was served, how
often an acknowledgement answered ``acknowledged`` (the moment the local
system has it), and anything served after it was acknowledged. Ids in
``never_ack`` are read but never acknowledged (a local system that lost
them), so the acknowledgement deadline passes for them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx


@dataclass
class InboxPuller:
    ports: Sequence[int]  # the replicas' HTTP ports
    token: str  # an API key of the authority whose inbox this is
    never_ack: frozenset[str] = frozenset()
    batch: int = 200
    served: Counter[str] = field(default_factory=Counter)
    acknowledged: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # ack outcome -> how many
    served_after_ack: list[str] = field(default_factory=list)
    unreachable: Counter[int] = field(default_factory=Counter)  # port -> failed requests
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def poll_once(self, client: httpx.Client, port: int) -> int:
        """One read and its acknowledgement on the replica at ``port``; ids acknowledged."""
        base = f"http://127.0.0.1:{port}/v1/inbox"
        auth = {"Authorization": f"Bearer {self.token}"}
        page = client.get(base, params={"limit": self.batch}, headers=auth)
        page.raise_for_status()
        ids = [item["message_id"] for item in page.json()]
        with self._lock:
            for message_id in ids:
                if message_id in self.never_ack:
                    continue
                self.served[message_id] += 1
                if self.acknowledged[message_id]:
                    self.served_after_ack.append(message_id)
        wanted = [m for m in ids if m not in self.never_ack]
        if not wanted:
            return 0
        answer = client.post(f"{base}/ack", json={"message_ids": wanted}, headers=auth)
        answer.raise_for_status()
        with self._lock:
            for item in answer.json():
                self.answers[item["outcome"]] += 1
                if item["outcome"] == "acknowledged":
                    self.acknowledged[item["message_id"]] += 1
        return len(wanted)

    def _run(self) -> None:
        turn = 0
        with httpx.Client(timeout=10.0) as client:
            while not self.stop.is_set():
                port = self.ports[turn % len(self.ports)]
                turn += 1
                try:
                    if self.poll_once(client, port):
                        continue
                except httpx.HTTPError:
                    # Killed (connection refused) or answering 5xx: the next replica.
                    with self._lock:
                        self.unreachable[port] += 1
                    continue
                self.stop.wait(0.1)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """(served, acknowledged) so far."""
        with self._lock:
            return Counter(self.served), Counter(self.acknowledged)

    def __enter__(self) -> InboxPuller:
        self._thread = threading.Thread(target=self._run, name="pull-system", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(30)
