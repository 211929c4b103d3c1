"""Hearing the work other processes on a PostgreSQL ledger created: LISTEN/NOTIFY.

Each gateway process on PostgreSQL keeps one dedicated connection (outside
the pool) listening on its ledger schema's channel (``notify.channel_name``) and turns each
notification into ``Wakeups.notify(topic)``, so a replica's idle loops sleep
until a replica, the API of another process or ``cafgw send`` commits work
for them, instead of polling the ledger. Notifications this process sent
itself are skipped (it woke its loops at the commit already).

If the connection drops (the server restarted, the backend was terminated,
the network cut), notifications sent meanwhile are lost: the listener
reconnects, pausing ``retry_s`` between tries, and on each connection wakes
every topic once, so each loop looks for what it may have missed. TCP
keepalives make a silently dead connection show within about a minute.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from sqlalchemy import Engine

from gateway.ledger.notify import CHANNEL, channel_name, parse
from gateway.wakeups import TOPICS, Wakeups

log = logging.getLogger(__name__)

# How long one wait for notifications lasts before the stop flag is looked at.
POLL_S = 1.0
# libpq's TCP keepalives (ignored on a Unix socket): a dead peer shows in about a minute.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}


class Listener:
    """A thread that LISTENs on the ledger's channel and wakes ``wakeups``."""

    def __init__(self, engine: Engine, wakeups: Wakeups, origin: str, retry_s: float = 1.0) -> None:
        self.engine = engine
        self.wakeups = wakeups
        self.origin = origin  # our own notifications' origin: skipped
        self.retry_s = retry_s
        self.connects = 0  # connections made (1 + reconnects)
        self.heard = 0  # notifications from other processes turned into wakes
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self.channel = CHANNEL  # the ledger schema's, once connected (notify.channel_name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cafgw-listener", daemon=True)
        self._thread.start()

    def wait_listening(self, timeout_s: float) -> bool:
        """True once the connection is listening (a notification after this is heard)."""
        return self._listening.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)  # the thread closes its connection on its way out

    def _run(self) -> None:
        # Imported here, in the thread that exists on PostgreSQL only: a gateway on
        # SQLite never loads the driver (~12 MB of its memory).
        import psycopg  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                self._connect()
                # Whatever was committed while we were not listening went unheard.
                self.wakeups.notify(*TOPICS)
                self._listen()
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                log.warning(
                    "ledger notifications: %s; reconnecting in %.0f s (loops poll meanwhile)",
                    str(exc).strip() or type(exc).__name__,
                    self.retry_s,
                )
            except Exception:  # never leave the loops on their long fallback for good
                log.exception("ledger notifications failed; reconnecting in %.0f s", self.retry_s)
            finally:
                self._listening.clear()
                self._disconnect()
            self._stop.wait(self.retry_s)

    def _connect(self) -> None:
        import psycopg  # noqa: PLC0415 (see _run)

        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        conn = psycopg.connect(*cargs, **{**_KEEPALIVES, **cparams}, autocommit=True)
        self._conn = conn
        self.connects += 1
        # The schema the URL's search_path makes current, as announce() asks it.
        schema = conn.execute("SELECT current_schema()").fetchone()
        self.channel = channel_name(str(schema[0] if schema else "public"))
        conn.execute(f'LISTEN "{self.channel}"')
        self._listening.set()

    def _listen(self) -> None:
        conn = self._conn
        while not self._stop.is_set():
            for note in conn.notifies(timeout=POLL_S):
                topic, origin = parse(note.payload)
                if origin != self.origin and topic in TOPICS:
                    self.heard += 1
                    self.wakeups.notify(topic)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            import psycopg  # noqa: PLC0415 (see _run)

            with contextlib.suppress(psycopg.Error):
                conn.close()
