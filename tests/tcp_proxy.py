"""A TCP forwarder to the shared RabbitMQ that a test can cut and restore.

To a gateway connected through it, ``cut()`` is a broker outage (every
connection dropped, new ones refused) and ``restore()`` the broker coming
back on the same address, while the shared broker itself is never touched.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def url(self, vhost_url: str) -> str:
        """``vhost_url`` (amqp://...@127.0.0.1:5672/vhost) through this proxy."""
        return vhost_url.replace("127.0.0.1:5672", f"127.0.0.1:{self.port}")

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        """Accept connections again (the broker is back)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._stop.clear()
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every connection and refuse new ones (the broker is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def _serve(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        client, _addr = listener.accept()
                        try:
                            upstream = socket.create_connection(self.target, timeout=5)
                        except OSError:
                            client.close()
                            continue
                        peers[client], peers[upstream] = upstream, client
                        with self._lock:
                            self._pairs.append((client, upstream))
                        selector.register(client, selectors.EVENT_READ, None)
                        selector.register(upstream, selectors.EVENT_READ, None)
                        continue
                    other = peers.get(sock)
                    try:
                        data = sock.recv(65536)
                        if not data or other is None:
                            raise OSError("closed")
                        other.sendall(data)
                    except OSError:
                        for s in (sock, other):
                            if s is not None and s in peers:
                                selector.unregister(s)
                                peers.pop(s, None)
                                with contextlib.suppress(OSError):
                                    s.close()
        finally:
            for s in list(peers):
                with contextlib.suppress(OSError):
                    s.close()
            selector.close()
            listener.close()
