"""Starting the real thing: broker check, transport, gateway, worker, HTTP server."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import uvicorn

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway, build
from gateway.cpu_budget import BUDGET
from gateway.errors import BrokerUnavailableError, ConfigError
from gateway.heap import freeze_startup
from gateway.ledger.apart import upgrade_apart
from gateway.ledger.single import SqliteLock, hold_sqlite
from gateway.private_files import tighten_tree
from gateway.settings import Settings
from gateway.transport.base import Transport
from gateway.transport.link import unreachable
from gateway.transport.rabbit import RabbitTransport
from gateway.worker import Worker

log = logging.getLogger(__name__)


def check_broker(urls: str | Sequence[str], timeout_s: float = 3.0) -> None:
    """Fail fast, with the fix, when nothing answers at the broker address
    (at any node of a cluster, for several ``urls``)."""
    failures: list[str] = []
    for url in [urls] if isinstance(urls, str) else urls:
        parsed = urlparse(url)
        default_port = 5671 if parsed.scheme == "amqps" else 5672
        host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            failures.append(unreachable(host, port, exc.strerror or str(exc)))
    if len(failures) == 1:
        raise BrokerUnavailableError(failures[0])
    raise BrokerUnavailableError(
        "no node of the RabbitMQ cluster in broker.urls answers: " + "; ".join(failures)
    )


def state_dirs(settings: Settings) -> list[Path]:
    """The directories holding the gateway's private state (``var/`` by default).

    The ledger's directory (SQLite), the keys, the API key store and the
    existence-query key; never the project root, the config directory or
    the home directory, which may hold files meant to be shared.
    """
    candidates = [settings.keys_dir, settings.api_keys_file.parent]
    url = settings.database.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        candidates.append(Path(url[len("sqlite:///") :]).parent)
    candidates.append(settings.policy.existence_key_file.parent)
    shared = {p.resolve() for p in (settings.config_dir.parent, settings.config_dir, Path.home())}
    found: list[Path] = []
    for folder in candidates:
        resolved = folder.resolve()
        if resolved not in shared and resolved not in found:
            found.append(resolved)
    return found


def secure_state(settings: Settings) -> None:
    """Make the gateway's state owner-only, however it was created (issue 13 item 7)."""
    for folder in state_dirs(settings):
        tighten_tree(folder)


def open_transport(settings: Settings) -> Transport:
    return RabbitTransport.from_settings(settings)


def open_gateway(settings: Settings, *, create_keys: bool = False) -> Gateway:
    """The gateway of a long-running command; its ledger upgraded in a child process
    first (``ledger.apart``), so this one never loads Alembic."""
    check_broker(settings.broker.nodes)
    upgrade_apart(settings.database.url)
    gw = build(settings, open_transport(settings), create_keys=create_keys)
    if settings.cpu_budget:
        BUDGET.enable()
        BUDGET.watch_engine(gw.ledger.engine)
    return gw


@dataclass
class Running:
    gw: Gateway
    worker: Worker
    sqlite_lock: SqliteLock | None = None

    def close(self) -> None:
        self.worker.close()
        self.gw.transport.close()
        self.worker.consumer_transport.close()
        if self.sqlite_lock is not None:
            self.sqlite_lock.release()


def start_worker(gw: Gateway) -> Running:
    """Start the worker's loops; refused (ConfigError) when another gateway process
    already runs on the same SQLite ledger (``gateway.ledger.single``)."""
    held = hold_sqlite(gw.settings.database.url)
    try:
        if held is not None:
            # The only gateway on this SQLite ledger: handovers claimed by a
            # killed predecessor need not wait for their lease to lapse.
            gw.ledger.forget_handover_claims()
        worker = Worker(gw, open_transport(gw.settings))
        worker.start()
    except BaseException:
        if held is not None:
            held.release()
        raise
    return Running(gw, worker, held)


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """How the API is served: host, port, and HTTPS when ``api.tls`` names a certificate."""
    tls = settings.api.tls
    for path in () if tls is None else (tls.cert_file, tls.key_file):
        if not path.is_file():
            raise ConfigError(f"api.tls: {path} is not a readable file")
    # log_config=None: uvicorn's records go through our JSON logging, not its own.
    return uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        log_config=None,
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
    )


def api_base(settings: Settings) -> str:
    """The API's base URL as clients reach it (https when api.tls is set)."""
    scheme = "http" if settings.api.tls is None else "https"
    return f"{scheme}://{settings.api.host}:{settings.api.port}"


def serve(running: Running, api_keys: ApiKeys, ready: threading.Event | None = None) -> None:
    """Serve the HTTP API until interrupted (blocking)."""
    settings = running.gw.settings
    app = create_app(running.gw, api_keys)
    # log_config=None: uvicorn's records go through our JSON logging, not its own.
    server = uvicorn.Server(uvicorn_config(settings, app))
    frozen = freeze_startup()  # start-up is done: out of the collector's full passes
    log.debug("%d objects built at start-up left out of garbage collection", frozen)
    if ready is not None:
        ready.set()
    server.run()
