"""The shape every fault test shares: stream messages, break something mid-stream, count.

``stream_with_fault`` signs ``count`` messages into the sender's outbox (in
chunks, from a thread, as a local system would submit them), fires
``fault`` once the receiving local system has taken ``trigger_at`` of them,
waits until every message was handed over and receipted, and returns what
the local system saw. The local system is one of:

- ``PullSystem`` (procs.py): ``inbox`` + ack on the receiver's ledger;
- ``FileDropSystem``: takes ``<id>.xml`` files from the drop directory;
- ``WebhookSystem``: an HTTP server that checks the HMAC and the
  idempotency key, and can answer 503 for a while.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from gateway.connectors.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from gateway.ledger.status import Status
from gateway.settings import ConnectorSettings, Settings
from tests.integration.procs import (
    Tally,
    feed,
    feeder,
    outbound_statuses,
    signed_batch,
    tally,
    wait_until,
)

COUNT = 2000
MESSAGE_ID = re.compile(rb"<(?:\w+:)?MessageId>([^<]+)</(?:\w+:)?MessageId>")


class LocalSystem(Protocol):
    handed: Counter[str]

    def start(self) -> None: ...
    def poll_once(self) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Ends:
    """What a stream needs to know of the two gateways."""

    sender_settings: Settings
    sender_code: str = "332"
    recipient_code: str = "336"


@dataclass(frozen=True)
class Outcome:
    tally: Tally
    sender_statuses: dict[str, int]
    seconds: float


def stream_with_fault(
    ends: Ends,
    local: LocalSystem,
    fault: Callable[[], None],
    *,
    count: int = COUNT,
    trigger_at: int | None = None,
    extra: Callable[[list[str]], list[str]] | None = None,
    settle_timeout_s: float = 150.0,
) -> Outcome:
    """Send ``count`` messages, run ``fault`` mid-stream, and count what the local system got.

    ``extra`` may add messages of its own to the outbox (given the ids sent
    so far, it returns the ids it added); they are not waited for.
    """
    started = time.monotonic()
    signer = feeder(ends.sender_settings)
    messages = signed_batch(signer, ends.sender_code, ends.recipient_code, count)
    ids = [m.message_id for m in messages]
    local.start()
    feeding = threading.Thread(target=feed, args=(signer, messages), kwargs={"chunk": 100})
    feeding.start()
    threshold = trigger_at if trigger_at is not None else count // 4
    try:
        wait_until(lambda: len(local.handed) >= threshold, 90, f"{threshold} messages handed over")
        fault()
        feeding.join(90)
        wait_until(
            lambda: len(set(ids) & set(local.handed)) >= count,
            settle_timeout_s,
            f"all {count} messages handed to the local system",
        )
        wait_until(
            lambda: (
                outbound_statuses(signer.ledger, ends.sender_code)[Status.DELIVERED.value] >= count
            ),
            settle_timeout_s,
            "a receipt for every message",
        )
        # A late duplicate would surface now: give the local system one more pass.
        time.sleep(1.0)
        local.poll_once()
    finally:
        feeding.join(90)
        local.close()
    statuses = dict(outbound_statuses(signer.ledger, ends.sender_code))
    signer.ledger.engine.dispose()
    return Outcome(tally(ids, local.handed), statuses, time.monotonic() - started)


@dataclass
class _Polling:
    """A background loop around ``poll_once``."""

    handed: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def poll_once(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.poll_once():
                    self.stop.wait(0.1)
            except OSError as exc:
                self.errors.append(repr(exc))
                self.stop.wait(0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-system", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class FileDropSystem(_Polling):
    """Takes ``<id>.xml`` files out of the drop directory (ignoring hidden staging files)."""

    directory: Path = Path()
    problems: list[str] = field(default_factory=list)

    def poll_once(self) -> int:
        taken = 0
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(".") or not name.endswith(".xml"):
                continue
            path = self.directory / name
            body = path.read_bytes()
            found = MESSAGE_ID.search(body)
            message_id = name.removesuffix(".xml")
            if found is None or found.group(1).decode() != message_id:
                self.problems.append(f"{name}: partial or foreign content")
            self.handed[message_id] += 1
            path.unlink()
            taken += 1
        return taken


@dataclass
class Post:
    message_id: str
    idempotency_key: str | None
    status: int


@dataclass
class WebhookSystem:
    """An HTTP local system: 2xx takes a message, 503 while ``failing`` is set."""

    secret: bytes
    failing: threading.Event = field(default_factory=threading.Event)
    handed: Counter[str] = field(default_factory=Counter)  # 2xx answers per message id
    posts: list[Post] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/caf"

    def listen(self) -> None:
        system = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                found = MESSAGE_ID.search(body)
                message_id = found.group(1).decode() if found else "?"
                key = self.headers.get(IDEMPOTENCY_HEADER)
                status = 503 if system.failing.is_set() else 200
                signed = self.headers.get(SIGNATURE_HEADER)
                with system.lock:
                    if not verify_signature(system.secret, body, signed):
                        system.problems.append(f"{message_id}: bad HMAC")
                    if key != message_id:
                        system.problems.append(f"{message_id}: idempotency key {key!r}")
                    system.posts.append(Post(message_id, key, status))
                    if status == 200:
                        system.handed[message_id] += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self) -> None:
        if self.server is None:
            self.listen()

    def poll_once(self) -> int:
        return 0

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def with_connector(settings: Settings, code: str, connector: ConnectorSettings) -> Settings:
    """``settings`` with authority ``code`` delivering through ``connector``."""
    directory = settings.directory
    authority = directory.get(code).model_copy(update={"connector": connector})
    authorities = {**directory.authorities, code: authority}
    return settings.model_copy(
        update={"directory": directory.model_copy(update={"authorities": authorities})}
    )
