"""Stand-ins for a receiving authority's local system, for connector tests.

- ``WebhookReceiver``: a real HTTP server on 127.0.0.1 (a free port) that
  checks each POST's HMAC signature, records what it took by idempotency key,
  and can be told to answer 503 (or any status) for a while, or for one
  message id.
- ``with_connector``: the same settings with one authority's connector
  replaced (in-process gateways, ``make_settings`` / ``make_gateway``).
  For ``cafgw run`` processes write the connector into the config dir's
  authorities.yaml instead (``procs.write_config(connectors=...)``).
- ``secret_file``: a fresh HMAC secret in a file outside the repository.
- ``signed_inbound``: signed IssueLogEntry messages from one authority to
  another, created at the gateway's clock.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.connectors.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.records import NewMessage
from gateway.model import Envelope
from gateway.settings import ConnectorSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "schemas" / "examples" / "issue-log-entry.xml"


def secret_file(folder: Path) -> tuple[Path, bytes]:
    """A new HMAC secret written to ``folder/webhook.secret`` (mode 600)."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    path = folder / "webhook.secret"
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return path, secret


def with_connector(settings: Settings, code: str, **connector: Any) -> Settings:
    """``settings`` with authority ``code`` using ``ConnectorSettings(**connector)``."""
    authority = settings.directory.get(code).model_copy(
        update={"connector": ConnectorSettings(**connector)}
    )
    directory = settings.directory.model_copy(
        update={"authorities": {**settings.directory.authorities, code: authority}}
    )
    return settings.model_copy(update={"directory": directory})


@dataclass(frozen=True)
class Call:
    key: str | None  # the Idempotency-Key header
    message_id: str | None
    attempt: str | None
    signature_ok: bool
    answered: int
    body_sha256: str


class WebhookReceiver:
    """A local system's webhook endpoint; use as a context manager."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.calls: list[Call] = []
        self.taken: Counter[str] = Counter()  # idempotency key -> 2xx answers
        self.bodies: dict[str, bytes] = {}
        self.failing_status: int | None = None
        self.refuse: dict[str, int] = {}  # message id -> status answered for it
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                key = self.headers.get(IDEMPOTENCY_HEADER)
                ok = verify_signature(receiver.secret, body, self.headers.get(SIGNATURE_HEADER))
                with receiver._lock:
                    status = 200
                    if not ok:
                        status = 401
                    elif receiver.failing_status is not None:
                        status = receiver.failing_status
                    elif key in receiver.refuse:
                        status = receiver.refuse[key]
                    receiver.calls.append(
                        Call(
                            key,
                            self.headers.get("X-Cafgw-Message-Id"),
                            self.headers.get("X-Cafgw-Attempt"),
                            ok,
                            status,
                            hashlib.sha256(body).hexdigest(),
                        )
                    )
                    if status < 300 and key is not None:
                        receiver.taken[key] += 1
                        receiver.bodies[key] = body
                answer = b"ok" if status < 300 else b"not now" if status >= 500 else b"refused"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/caf/inbound"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail_with(self, status: int | None) -> None:
        """Answer ``status`` to every POST from now on (None: answer normally again)."""
        with self._lock:
            self.failing_status = status

    def snapshot(self) -> tuple[list[Call], Counter[str]]:
        with self._lock:
            return list(self.calls), Counter(self.taken)


def _template() -> Envelope:
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=100_000, max_depth=64)
    return element_to_envelope(root)


def signed_inbound(gw: Gateway, sender: str, recipient: str, count: int) -> list[NewMessage]:
    """``count`` distinct signed messages from ``sender`` to ``recipient`` (no personal data)."""
    template = _template()
    out = []
    for _ in range(count):
        header = replace(
            template.header,
            message_id=str(uuid.uuid4()),
            sender=sender,
            recipient=recipient,
            created_at=gw.clock().replace(microsecond=0),
        )
        # an issue-log entry is reported by the authority that sends it
        body = replace(template.body, reported_by_la=sender)  # type: ignore[type-var]
        out.append(gw.outbox.sign(Envelope(header, body)))
    return out
